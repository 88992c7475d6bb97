//! Times TOPIQ-NR on one image: load once, score three times, print the median.
//!
//! `cargo run --release -p ttpo --example iqa_topiq_time -- CHECKPOINT.pth IMAGE`

use candle_core::Device;
use std::path::Path;
use std::time::Instant;
use ttpo::scoring::topiq::TopiqNr;
use ttpo::{Image, Metric};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ckpt, image] = args.as_slice() else {
        return Err("usage: iqa_topiq_time CHECKPOINT.pth IMAGE".into());
    };
    let t = Instant::now();
    let model = TopiqNr::load(Path::new(ckpt), &Device::Cpu)?;
    println!("load {:.2} s", t.elapsed().as_secs_f64());
    let img = Image::open(image)?;
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let s = model.score(&img)?;
        times.push(t.elapsed().as_secs_f64());
        println!("score {s:.7} in {:.3} s", times[times.len() - 1]);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "median {:.3} s ({}x{})",
        times[1],
        img.width(),
        img.height()
    );
    Ok(())
}
