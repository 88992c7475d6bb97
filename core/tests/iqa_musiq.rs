//! MUSIQ against pyiqa's own architecture code (scripts/conformance/iqa_reference_musiq.py
//! writes random weights as `musiq.pth` / `musiq_ava.pth` and pyiqa's tokens, features and
//! scores as `musiq.safetensors` into $TTPO_REFERENCE/iqa). The comparison is `#[ignore]`d
//! like the other conformance tests (scripts/conformance/run.sh runs it); the other tests
//! need no reference: they build a small random model in memory.

mod common;

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use ttpo::scoring::musiq::{self, Musiq};
use ttpo::{Error, Image, Metric};

/// Largest |a - b| over the largest |b|.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shape");
    let a = a.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let b = b.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let diff = (&a - &b).unwrap().abs().unwrap().max(0).unwrap();
    let scale = b.abs().unwrap().max(0).unwrap();
    diff.to_scalar::<f64>().unwrap() / scale.to_scalar::<f64>().unwrap().max(1e-30)
}

fn reference_dir() -> Option<PathBuf> {
    match std::env::var_os("TTPO_REFERENCE") {
        Some(r) => Some(PathBuf::from(r).join("iqa")),
        None => {
            eprintln!("TTPO_REFERENCE is not set: skipping the MUSIQ comparison with pyiqa");
            None
        }
    }
}

#[test]
#[ignore = "needs the pyiqa reference (scripts/conformance/iqa_reference_musiq.py)"]
fn musiq_matches_pyiqa() {
    let Some(dir) = reference_dir() else { return };
    let dev = Device::Cpu;
    for f in ["musiq.pth", "musiq_ava.pth", "musiq.safetensors"] {
        assert!(
            dir.join(f).is_file(),
            "{} is missing: run scripts/conformance/iqa_reference_musiq.py {}",
            dir.join(f).display(),
            dir.display()
        );
    }
    let koniq = Musiq::load(&dir.join("musiq.pth"), &dev).unwrap();
    let ava = Musiq::load(&dir.join("musiq_ava.pth"), &dev).unwrap();
    assert!(!koniq.has_score_bins() && ava.has_score_bins());
    assert_eq!(koniq.num_layers(), 14);
    let reference = candle_core::safetensors::load(dir.join("musiq.safetensors"), &dev).unwrap();
    let mut names: Vec<&str> = reference
        .keys()
        .filter_map(|k| k.strip_suffix(".image"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 9, "five calibration images and four photos");
    let get = |n: &str, what: &str| &reference[&format!("{n}.{what}")];
    let mut worst = [0f64; 5];
    for name in names {
        let image = common::image_from_u8(get(name, "image"));
        let input = koniq.preprocess(&image).unwrap();
        let e_patches = rel_err(&input.pyiqa_layout().unwrap(), get(name, "patches"));
        let f = koniq.forward(&input).unwrap();
        let e_emb = rel_err(&f.embedding, get(name, "embedding"));
        let e_enc = rel_err(&f.encoded, get(name, "encoded"));
        let want = get(name, "score").to_vec1::<f64>().unwrap()[0];
        let e_score = (f.score - want).abs() / want.abs();
        let got_ava = ava.score(&image).unwrap();
        let want_ava = get(name, "score_ava").to_vec1::<f64>().unwrap()[0];
        let e_ava = (got_ava - want_ava).abs() / want_ava.abs();
        println!(
            "{name} {}x{} tokens {}: patches {e_patches:.2e} embedding {e_emb:.2e} encoded {e_enc:.2e} \
             score {:.6} vs {want:.6} ({e_score:.2e}) ava {got_ava:.6} vs {want_ava:.6} ({e_ava:.2e})",
            image.width(),
            image.height(),
            input.len(),
            f.score
        );
        for (w, e) in worst
            .iter_mut()
            .zip([e_patches, e_emb, e_enc, e_score, e_ava])
        {
            *w = w.max(e);
        }
    }
    println!(
        "max relative errors: patches {:.2e} embedding {:.2e} encoded {:.2e} score {:.2e} ava score {:.2e}",
        worst[0], worst[1], worst[2], worst[3], worst[4]
    );
    for (what, e) in ["patches", "embedding", "encoded", "score", "ava score"]
        .iter()
        .zip(worst)
    {
        assert!(e <= 1e-5, "{what}: relative error {e:.2e} > 1e-5");
    }
}

/// A small random MUSIQ state dict under pyiqa's names: the real stem and patch size, a
/// narrow encoder (width 12, 1 block); `head_bins` = 0 for the one-score head.
fn tiny_state(head_bins: usize) -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let mut t = HashMap::new();
    let mut seed = 0u64;
    let mut put = |name: &str, shape: &[usize], scale: f32, offset: f32| {
        seed += 1;
        let n: usize = shape.iter().product();
        // A fixed pseudo-random sequence (no RNG dependency, same every run).
        let v: Vec<f32> = (0..n)
            .map(|i| {
                let x = ((i as f64 + 1.0) * 12.9898 + seed as f64 * 78.233).sin() * 43758.5453;
                offset + scale * (2.0 * (x - x.floor()) as f32 - 1.0)
            })
            .collect();
        t.insert(name.to_string(), Tensor::from_vec(v, shape, &dev).unwrap());
    };
    let (w, mlp) = (12, 8);
    put("conv_root.weight", &[64, 3, 7, 7], 1.0, 0.0);
    put("gn_root.weight", &[64], 0.1, 1.0);
    put("gn_root.bias", &[64], 0.1, 0.0);
    for (conv, cin, cout, k) in [
        ("conv1", 64, 64, 1),
        ("conv2", 64, 64, 3),
        ("conv3", 64, 256, 1),
        ("conv_proj", 64, 256, 1),
    ] {
        put(
            &format!("block1.{conv}.weight"),
            &[cout, cin, k, k],
            1.0,
            0.0,
        );
        let gn = conv.replace("conv", "gn");
        put(&format!("block1.{gn}.weight"), &[cout], 0.1, 1.0);
        put(&format!("block1.{gn}.bias"), &[cout], 0.1, 0.0);
    }
    put("embedding.weight", &[w, 16384], 0.01, 0.0);
    put("embedding.bias", &[w], 0.1, 0.0);
    let te = "transformer_encoder";
    put(
        &format!("{te}.posembed_input.position_emb"),
        &[1, 100, w],
        0.5,
        0.0,
    );
    put(
        &format!("{te}.scaleembed_input.scale_emb"),
        &[3, w],
        0.5,
        0.0,
    );
    put(&format!("{te}.cls"), &[1, 1, w], 0.5, 0.0);
    put(&format!("{te}.encoder_norm.weight"), &[w], 0.1, 1.0);
    put(&format!("{te}.encoder_norm.bias"), &[w], 0.1, 0.0);
    let b = format!("{te}.transformer.encoderblock_0");
    for n in ["norm1", "norm2"] {
        put(&format!("{b}.{n}.weight"), &[w], 0.1, 1.0);
        put(&format!("{b}.{n}.bias"), &[w], 0.1, 0.0);
    }
    for n in ["query", "key", "value", "out"] {
        put(&format!("{b}.attention.{n}.weight"), &[w, w], 0.5, 0.0);
        put(&format!("{b}.attention.{n}.bias"), &[w], 0.1, 0.0);
    }
    put(&format!("{b}.mlp.fc1.weight"), &[mlp, w], 0.5, 0.0);
    put(&format!("{b}.mlp.fc1.bias"), &[mlp], 0.1, 0.0);
    put(&format!("{b}.mlp.fc2.weight"), &[w, mlp], 0.5, 0.0);
    put(&format!("{b}.mlp.fc2.bias"), &[w], 0.1, 0.0);
    if head_bins == 0 {
        put("head.weight", &[1, w], 0.5, 0.0);
        put("head.bias", &[1], 0.1, 0.0);
    } else {
        put("head.0.weight", &[head_bins, w], 0.5, 0.0);
        put("head.0.bias", &[head_bins], 0.1, 0.0);
    }
    t
}

fn tiny(head_bins: usize) -> Musiq {
    Musiq::from_tensors(tiny_state(head_bins), Path::new("tiny.pth"), &Device::Cpu).unwrap()
}

#[test]
fn tokens_follow_pyiqa_multiscale_rule() {
    let m = tiny(0);
    // 512x384 (pyiqa: 385 tokens): 224x168 -> 7x6 patches padded to 49, 384x288 -> 12x9
    // padded to 144, original 16x12.
    let input = m.preprocess(&common::textured(512, 384)).unwrap();
    assert_eq!(input.len(), 49 + 144 + 192);
    let real = |lo: usize, hi: usize| input.mask[lo..hi].iter().filter(|&&v| v).count();
    assert_eq!((real(0, 49), real(49, 193), real(193, 385)), (42, 108, 192));
    assert_eq!(input.scale[193], 2);
    // The hashed positions of the 16x12 original grid: last patch at row 9, column 9.
    assert_eq!(input.spatial[384], 99);
    // Row 1 of the 6-row scale-0 grid maps to grid row floor(1 * 10 / 6) = 1, column 1 of 7
    // to floor(10 / 7) = 1.
    assert_eq!(input.spatial[7 + 1], 11);
    // A 1x1 image still scores (each scale is one patch).
    assert_eq!(
        m.preprocess(&common::textured(1, 1)).unwrap().len(),
        49 + 144 + 1
    );
}

#[test]
fn score_is_deterministic_and_depends_on_the_image() {
    for bins in [0, 10] {
        let m = tiny(bins);
        let img = common::textured(97, 61);
        let a = m.score(&img).unwrap();
        let b = m.score(&img).unwrap();
        assert_eq!(a.to_bits(), b.to_bits());
        assert!(a.is_finite());
        let c = m.score(&common::textured(61, 97)).unwrap();
        assert_ne!(a, c);
        if bins > 0 {
            assert!((1.0..=10.0).contains(&a), "AVA mean score {a}");
        }
    }
}

#[test]
fn too_thin_image_is_an_error() {
    let m = tiny(0);
    let err = m.score(&common::textured(900, 2)).unwrap_err();
    assert!(
        matches!(&err, Error::Metric { metric, reason } if metric == "musiq" && reason.contains("900x2")),
        "{err}"
    );
    // 448:1 resizes one row to 0.5 rows, which Python's round() takes to 0 (half to even);
    // 447:1 still gives one row.
    assert!(m.score(&common::textured(448, 1)).is_err());
    assert!(m.score(&common::textured(447, 1)).is_ok());
}

#[test]
fn bad_checkpoints_name_the_tensor() {
    let dev = Device::Cpu;
    let mut s = tiny_state(0);
    s.remove("block1.gn2.bias");
    let err = Musiq::from_tensors(s, Path::new("x.pth"), &dev).unwrap_err();
    assert!(err.to_string().contains("block1.gn2.bias"), "{err}");

    let mut s = tiny_state(0);
    s.insert(
        "transformer_encoder.transformer.encoderblock_0.mlp.fc2.weight".into(),
        Tensor::zeros((12, 9), DType::F32, &dev).unwrap(),
    );
    let err = Musiq::from_tensors(s, Path::new("x.pth"), &dev).unwrap_err();
    assert!(err.to_string().contains("mlp.fc2.weight"), "{err}");

    let mut s = tiny_state(0);
    s.remove("head.weight");
    let err = Musiq::from_tensors(s, Path::new("x.pth"), &dev).unwrap_err();
    assert!(err.to_string().contains("head"), "{err}");

    let mut s = tiny_state(0);
    s.insert(
        "head.weight".into(),
        Tensor::zeros((5, 12), DType::F32, &dev).unwrap(),
    );
    let err = Musiq::from_tensors(s, Path::new("x.pth"), &dev).unwrap_err();
    assert!(err.to_string().contains("5 outputs"), "{err}");

    let missing = Musiq::load(Path::new("/nonexistent/musiq.pth"), &dev).unwrap_err();
    assert!(matches!(missing, Error::MissingFile { .. }), "{missing}");
    let junk = std::env::temp_dir().join(format!("ttpo-musiq-junk-{}.pth", std::process::id()));
    std::fs::write(&junk, b"not a zip").unwrap();
    let err = Musiq::load(&junk, &dev).unwrap_err();
    std::fs::remove_file(&junk).unwrap();
    assert!(matches!(err, Error::Weights { .. }), "{err}");
}

#[test]
#[ignore = "timing: run in release with the reference (--include-ignored --nocapture)"]
fn musiq_time_one_photo() {
    let Some(dir) = reference_dir() else { return };
    let assets = std::env::var_os("TTPO_ASSETS").expect("TTPO_ASSETS");
    let img = Image::open(Path::new(&assets).join("photos/astronaut.png")).unwrap();
    let m = Musiq::load(&dir.join("musiq.pth"), &Device::Cpu).unwrap();
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        m.score(&img).unwrap();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "musiq astronaut {}x{}: median {:.3} s of {times:?} ({} tokens)",
        img.width(),
        img.height(),
        times[1],
        musiq::preprocess(&img, 10, &Device::Cpu).unwrap().len()
    );
}
