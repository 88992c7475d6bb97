//! Shared helpers for the integration tests: tiny model folders and test images.
#![allow(dead_code)]

pub mod compare;
pub mod recording;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use ttpo::diffusion::tiny::{write_tiny_model, TinyKind};
use ttpo::{Engine, EngineConfig, Image, Options};

/// A fresh temporary directory (removed by the OS eventually; tests write little).
pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("ttpo-test-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny model folder of `kind` (seed 0), written once per test binary.
pub fn tiny_model(kind: TinyKind) -> PathBuf {
    static MADE: OnceLock<std::sync::Mutex<Vec<(TinyKind, PathBuf)>>> = OnceLock::new();
    let mut made = MADE.get_or_init(Default::default).lock().unwrap();
    if let Some((_, d)) = made.iter().find(|(k, _)| *k == kind) {
        return d.clone();
    }
    let d = temp_dir(&format!("tiny-{kind:?}").to_lowercase());
    write_tiny_model(&d, kind, 0).unwrap();
    made.push((kind, d.clone()));
    d
}

/// A shared engine on the tiny epsilon model.
pub fn tiny_engine() -> Arc<Engine> {
    static E: OnceLock<Arc<Engine>> = OnceLock::new();
    E.get_or_init(|| {
        Arc::new(Engine::load(&[tiny_model(TinyKind::Epsilon)], &EngineConfig::default()).unwrap())
    })
    .clone()
}

/// Small, fast options.
pub fn fast_options() -> Options {
    let mut o = Options {
        steps: 10,
        strengths: vec![0.3, 0.5],
        ..Default::default()
    };
    o.refine.steps = 8;
    o
}

/// A smooth synthetic test picture.
pub fn synthetic(w: usize, h: usize) -> Image {
    let mut d = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            d.extend_from_slice(&[fx, fy, 0.5 + 0.4 * (6.0 * fx).sin() * (4.0 * fy).cos()]);
        }
    }
    Image::from_rgb(w, h, d).unwrap()
}

/// The asset folder (scripts/fetch-assets.sh fills it).
pub fn assets() -> PathBuf {
    let dir = std::env::var_os("TTPO_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/assets"));
    assert!(
        dir.join("photos/astronaut.png").exists(),
        "test assets missing in {}: run scripts/fetch-assets.sh (or set TTPO_ASSETS)",
        dir.display()
    );
    dir
}

/// A real photograph, box-downscaled by an integer factor to keep tests fast.
pub fn photo(name: &str, factor: usize) -> Image {
    Image::open(assets().join("photos").join(name))
        .unwrap()
        .box_downscale(factor)
}

/// Largest absolute sample difference.
pub fn max_diff(a: &Image, b: &Image) -> f32 {
    assert_eq!((a.width(), a.height()), (b.width(), b.height()));
    a.data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The `Backbone` methods a test wrapper passes through to the backbone in `$field`
/// (everything but its name and the three network calls, which the wrapper writes).
#[macro_export]
macro_rules! pass_through_backbone {
    ($($field:tt)+) => {
        fn device(&self) -> &candle_core::Device {
            self.$($field)+.device()
        }
        fn pad_multiple(&self) -> usize {
            self.$($field)+.pad_multiple()
        }
        fn vae_factor(&self) -> usize {
            self.$($field)+.vae_factor()
        }
        fn latent_channels(&self) -> usize {
            self.$($field)+.latent_channels()
        }
        fn native_size(&self) -> usize {
            self.$($field)+.native_size()
        }
        fn vae_tile_bytes(&self, side: usize) -> usize {
            self.$($field)+.vae_tile_bytes(side)
        }
        fn sampler(&self) -> &ttpo::diffusion::sampler::Sampler {
            ttpo::diffusion::Backbone::sampler(&self.$($field)+)
        }
        fn encode_text(
            &self,
            prompts: &[&str],
        ) -> ttpo::Result<Vec<ttpo::diffusion::TextStates>> {
            ttpo::diffusion::Backbone::encode_text(&self.$($field)+, prompts)
        }
    };
}

/// Copies a folder tree (a private copy of a model a test may break).
#[allow(dead_code)] // not every test binary copies folders
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// An 8-bit (H, W, 3) image tensor (as the pyiqa reference scripts store their inputs) as
/// an [`Image`].
pub fn image_from_u8(t: &candle_core::Tensor) -> Image {
    let (h, w, _) = t.dims3().unwrap();
    let data: Vec<f32> = t
        .flatten_all()
        .unwrap()
        .to_dtype(candle_core::DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(|v| v / 255.0)
        .collect();
    Image::from_rgb(w, h, data).unwrap()
}

/// A deterministic colourful texture (no photo needed) for the learned metrics' own tests.
pub fn textured(w: usize, h: usize) -> Image {
    let mut d = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32, y as f32);
            d.push(0.5 + 0.45 * (fx * 0.11).sin() * (fy * 0.07).cos());
            d.push(((x * 7 + y * 13) % 17) as f32 / 16.0);
            d.push(0.5 + 0.45 * ((fx + fy) * 0.05).sin());
        }
    }
    Image::from_rgb(w, h, d).unwrap()
}
