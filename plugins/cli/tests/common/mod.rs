//! Shared helpers for the CLI tests: a tiny model folder, downscaled real photos, and a
//! command builder with an isolated environment.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// A fresh folder under the system temp dir, unique per call.
pub fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "ttpo-cli-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The real test photos (`$TTPO_ASSETS/photos`, default `<repo>/.cache/assets/photos`).
pub fn photos_dir() -> PathBuf {
    let root = std::env::var_os("TTPO_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/assets"));
    let d = root.join("photos");
    assert!(
        d.join("astronaut.png").is_file(),
        "test photos missing: {} has no astronaut.png; run scripts/fetch-assets.sh (or set TTPO_ASSETS)",
        d.display()
    );
    d
}

/// A square crop of a real photo, resized to `side` px, saved as PNG in `dir`. `offset`
/// shifts the crop so that several different inputs come from one photo.
pub fn photo(dir: &Path, name: &str, side: u32, offset: u32) -> PathBuf {
    let src = image::open(photos_dir().join("astronaut.png"))
        .expect("astronaut.png decodes")
        .to_rgb8();
    let (w, h) = src.dimensions();
    let s = w.min(h) / 2;
    let x = (w / 4 + offset).min(w - s);
    let y = (h / 8 + offset / 2).min(h - s);
    let crop = image::imageops::crop_imm(&src, x, y, s, s).to_image();
    let small = image::imageops::resize(&crop, side, side, image::imageops::FilterType::Triangle);
    let p = dir.join(name);
    small.save(&p).unwrap();
    p
}

/// The tiny epsilon model, written once per test process.
pub fn tiny_model() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = temp_dir("model").join("tiny-sd");
        ttpo::diffusion::tiny::write_tiny_model(&d, ttpo::diffusion::tiny::TinyKind::Epsilon, 0)
            .expect("tiny model");
        d
    })
    .clone()
}

/// `ttpo` with an isolated environment (no model dir, private HF cache, no network).
pub fn ttpo(hf_home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ttpo"));
    c.env_remove("TTPO_MODEL_DIR")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HUGGINGFACE_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env("HF_HOME", hf_home)
        .env("HF_ENDPOINT", "http://127.0.0.1:9");
    c
}

/// Small, fast job options for the tiny model.
pub const FAST: &[&str] = &[
    "--steps",
    "6",
    "--strengths",
    "0.3,0.6",
    "--refine-steps",
    "6",
    "--metrics",
    "sharpness",
    "--device",
    "cpu",
];

pub fn run_ok(c: &mut Command) -> Output {
    let out = c.output().expect("ttpo runs");
    assert!(
        out.status.success(),
        "ttpo failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Mean absolute difference of two 16-bit-or-8-bit images, in [0, 1].
pub fn mean_abs_diff(a: &Path, b: &Path) -> f64 {
    let a = image::open(a).unwrap().to_rgb32f();
    let b = image::open(b).unwrap().to_rgb32f();
    assert_eq!(a.dimensions(), b.dimensions());
    let n = a.as_raw().len() as f64;
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (x - y).abs() as f64)
        .sum::<f64>()
        / n
}

/// `FAST` with some options replaced: `over` is a flat list of `--key value` pairs.
pub fn fast(over: &[&str]) -> Vec<String> {
    let keys: Vec<&str> = over
        .iter()
        .copied()
        .filter(|a| a.starts_with("--"))
        .collect();
    let mut v = Vec::new();
    let mut i = 0;
    while i < FAST.len() {
        if keys.contains(&FAST[i]) {
            i += 2;
            continue;
        }
        v.push(FAST[i].to_string());
        v.push(FAST[i + 1].to_string());
        i += 2;
    }
    v.extend(over.iter().map(|s| s.to_string()));
    v
}
