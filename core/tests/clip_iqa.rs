//! CLIP-IQA against transformers' CLIPModel on identical tiny random weights (real
//! architecture, real tensor names, a real CLIP BPE tokenizer with a tiny vocabulary).
//! The comparison needs Python with torch + transformers + pillow, so it is `#[ignore]`d like
//! the other conformance tests: run it with the project venv (scripts/conformance/setup.sh)
//! `cargo test -p ttpo --test clip_iqa -- --ignored --nocapture` (python: TTPO_PYTHON, else
//! <repo>/.venv/bin/python, else python3).

use candle_core::Device;
use std::path::{Path, PathBuf};
use std::process::Command;
use ttpo::diffusion::tokenizer::write_tiny_vocab;
use ttpo::scoring::clip_iqa::{self, ClipIqa, PROMPT_PAIRS};
use ttpo::{Image, Metric};

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TTPO_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv.is_file() {
        venv
    } else {
        "python3".into()
    }
}

fn textured(w: usize, h: usize, seed: f32) -> Image {
    let mut d = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32, y as f32);
            d.push(0.5 + 0.45 * (fx * 0.11 + seed).sin() * (fy * 0.07).cos());
            d.push(((x * 7 + y * 13) % 17) as f32 / 16.0);
            d.push(0.5 + 0.45 * ((fx + fy) * 0.03 * seed).sin());
        }
    }
    Image::from_rgb(w, h, d).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
#[ignore = "needs Python with torch + transformers (scripts/conformance/setup.sh)"]
fn clip_iqa_matches_transformers_on_tiny_random_clip() {
    let dir = std::env::temp_dir().join(format!("ttpo-clipiqa-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = "good photo. bad photo. high quality. low quality. sharp photo. blurry photo. \
                  a photo of a cat, the quick brown fox";
    write_tiny_vocab(&dir, corpus, 200).unwrap();
    // 8-bit images: exactly square, landscape (downscale), portrait (upscale).
    let mut paths = Vec::new();
    for (i, (w, h)) in [(224, 224), (331, 250), (180, 257)].into_iter().enumerate() {
        let p = dir.join(format!("img{i}.bmp"));
        textured(w, h, 1.0 + i as f32).save(&p).unwrap();
        paths.push(p);
    }
    let out = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/clip_iqa_reference.py"))
        .arg(&dir)
        .args(&paths)
        .output()
        .expect("run python (set TTPO_PYTHON to a python with torch + transformers)");
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let iqa = ClipIqa::load(&dir, &Device::Cpu).unwrap();
    let text = iqa.text_embeddings().to_vec2::<f32>().unwrap();
    for (i, row) in reference["text"].as_array().unwrap().iter().enumerate() {
        let mine: Vec<f64> = text[i].iter().map(|&v| v as f64).collect();
        let d = max_diff(&mine, &floats(row));
        eprintln!("text {i}: max |diff| {d:.2e}");
        assert!(d < 1e-5, "prompt {i} embedding differs by {d}");
    }
    for (path, r) in paths.iter().zip(reference["images"].as_array().unwrap()) {
        let img = Image::open(path).unwrap();
        let emb: Vec<f64> = iqa
            .image_embedding(&img)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(|v| v as f64)
            .collect();
        let d = max_diff(&emb, &floats(&r["embedding"]));
        // Preprocessing reproduces PIL's fixed-point bicubic exactly (one 8-bit level
        // would move the sum by ~0.015).
        let px = clip_iqa::preprocess(&img, 224, &Device::Cpu).unwrap();
        let sum = px
            .to_dtype(candle_core::DType::F64)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let ds = (sum - r["pixels_sum"].as_f64().unwrap()).abs();
        eprintln!("pixel sum |diff| {ds:.4}");
        assert!(
            ds < 1e-3,
            "{}: preprocessed pixel sums differ by {ds}",
            path.display()
        );
        let pairs = iqa.pair_scores(&img).unwrap();
        let dp = max_diff(&pairs, &floats(&r["pairs"]));
        let score = iqa.score(&img).unwrap();
        eprintln!(
            "{} {}x{}: embedding max |diff| {d:.2e}, pairs {pairs:?} vs {:?} (max |diff| {dp:.2e}), score {score:.5}",
            path.display(), img.width(), img.height(), floats(&r["pairs"])
        );
        assert!(
            d < 1e-5,
            "{}: image embedding differs by {d}",
            path.display()
        );
        assert!(dp < 1e-4, "{}: pair scores differ by {dp}", path.display());
        assert_eq!(pairs.len(), PROMPT_PAIRS.len());
        assert!((0.0..=1.0).contains(&score));
    }
    assert_eq!(iqa.name(), "clipiqa");
    assert!(iqa.higher_is_better());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn clip_iqa_load_reports_missing_files() {
    let err = ClipIqa::load("/nonexistent/clip", &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn clip_preprocessing_keeps_flat_images_flat_and_crops_square() {
    let rgb = [64.0 / 255.0, 128.0 / 255.0, 200.0 / 255.0];
    for (w, h) in [(224, 224), (500, 300), (120, 333), (97, 97)] {
        let img = Image::filled(w, h, rgb).unwrap();
        let t = clip_iqa::preprocess(&img, 224, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[1, 3, 224, 224]);
        let v = t
            .squeeze(0)
            .unwrap()
            .flatten_from(1)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for c in 0..3 {
            let want = (rgb[c] - clip_iqa::CLIP_MEAN[c] as f32) / clip_iqa::CLIP_STD[c] as f32;
            let worst = v[c].iter().map(|x| (x - want).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-6, "{w}x{h} channel {c}: off by {worst}");
        }
    }
}
