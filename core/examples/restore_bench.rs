//! Times restoration networks (core/src/restore) on the CPU: one untiled forward call on a
//! crop of a real photo, after one warm-up call; prints one JSON line per network with the
//! median of `--repeat` runs and the seconds per input megapixel.
//!
//! `cargo run --release -p ttpo --example restore_bench -- ASSETS_DIR [--nets ffdnet,ffdnet-gray]
//!  [--size WxH] [--repeat 3]`  (ASSETS_DIR: `$TTPO_ASSETS`, with photos/ and restore/)
//!
//! scripts/bench_restore.py times the reference runtimes on the same crops.

use std::time::Instant;
use ttpo::restore::{self, RestoreKind};
use ttpo::Image;

fn main() -> ttpo::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let assets = std::path::PathBuf::from(args.first().expect("usage: restore_bench ASSETS_DIR"));
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let nets = flag("--nets").unwrap_or_else(|| "ffdnet,ffdnet-gray".into());
    let size = flag("--size").unwrap_or_else(|| "512x384".into());
    let (w, h) = size
        .split_once('x')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .expect("--size WxH");
    let repeat: usize = flag("--repeat").map_or(3, |r| r.parse().expect("--repeat N"));
    // The astronaut photo is 512x512: the crop's top-left corner.
    let img = Image::open(assets.join("photos/astronaut.png"))?.crop(0, 0, w, h);
    for name in nets.split(',') {
        let kind = RestoreKind::from_name(name)?;
        let net = restore::load(kind, assets.join("restore"))?;
        let x = restore::image_to_tensor(&img, net.device())?;
        net.forward(&x)?; // warm-up (allocations, thread pool)
        let mut times = Vec::new();
        for _ in 0..repeat {
            let t = Instant::now();
            net.forward(&x)?;
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let median = times[times.len() / 2];
        let mp = (w * h) as f64 / 1e6;
        println!(
            "{}",
            serde_json::json!({
                "net": name, "size": [w, h], "median_s": median, "s_per_mp": median / mp,
                "runs_s": times, "threads": rayon::current_num_threads(),
            })
        );
    }
    Ok(())
}
