//! TOPIQ-NR against pyiqa's own CFANet (ResNet-50, no-reference) on identical random
//! weights: scripts/conformance/iqa_reference_topiq.py writes `$TTPO_REFERENCE/iqa/topiq.pth`
//! (pyiqa's published `{'params': state_dict}` layout) and `topiq.safetensors` (input
//! images, intermediate features, scores). The comparison is `#[ignore]`d (run.sh runs it
//! with --include-ignored). The other tests need no reference: they build a random state
//! dict under pyiqa's tensor names here.

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use ttpo::scoring::topiq::{TopiqNr, MIN_SIDE};
use ttpo::{Image, Metric};

/// Tolerance on max |ours - pyiqa| / max |pyiqa| per tensor.
const TOL: f64 = 1e-5;

fn reference_dir() -> Option<PathBuf> {
    let Some(root) = std::env::var_os("TTPO_REFERENCE") else {
        eprintln!("TTPO_REFERENCE is not set: skipping the pyiqa comparison (scripts/conformance/run.sh sets it)");
        return None;
    };
    let dir = PathBuf::from(root).join("iqa");
    for f in ["topiq.pth", "topiq.safetensors"] {
        assert!(
            dir.join(f).is_file(),
            "{} is missing: run scripts/conformance/iqa_reference_topiq.py {}",
            dir.join(f).display(),
            dir.display()
        );
    }
    Some(dir)
}

/// max |a - b| / max |b| over all elements.
fn rel_err(ours: &Tensor, theirs: &Tensor) -> (f64, f64) {
    let a: Vec<f32> = ours.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = theirs.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a.len(), b.len(), "element counts differ");
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() as f64)
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs() as f64).fold(0.0, f64::max);
    (diff, diff / scale.max(1e-30))
}

fn image_from_u8(t: &Tensor) -> Image {
    let (h, w, _) = t.dims3().unwrap();
    let data: Vec<f32> = t
        .flatten_all()
        .unwrap()
        .to_vec1::<u8>()
        .unwrap()
        .into_iter()
        .map(|v| v as f32 / 255.0)
        .collect();
    Image::from_rgb(w, h, data).unwrap()
}

#[test]
#[ignore = "needs the pyiqa reference (scripts/conformance/iqa_reference_topiq.py)"]
fn topiq_matches_pyiqa_cfanet() {
    let Some(dir) = reference_dir() else { return };
    let dev = Device::Cpu;
    let model = TopiqNr::load(&dir.join("topiq.pth"), &dev).unwrap();
    let refs = candle_core::safetensors::load(dir.join("topiq.safetensors"), &dev).unwrap();
    let mut stems: Vec<&str> = refs
        .keys()
        .filter_map(|k| k.strip_suffix(".image"))
        .collect();
    stems.sort();
    assert!(
        stems.len() >= 9,
        "expected 5 calibration images + 4 photos, got {stems:?}"
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut worst = 0f64;
    for stem in stems {
        let img = image_from_u8(&refs[&format!("{stem}.image")]);
        let detail = refs.contains_key(&format!("{stem}.feat0"));
        let t0 = Instant::now();
        let f = model.features(&img, detail).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let mut check = |name: String, t: &Tensor| {
            let (abs, rel) = rel_err(t, &refs[&name]);
            println!("  {name:<22} max abs {abs:.3e}  rel {rel:.3e}");
            assert!(rel <= TOL, "{name}: relative error {rel:.3e} > {TOL:e}");
            worst = worst.max(rel);
        };
        println!("{stem} {}x{} ({secs:.2} s)", img.width(), img.height());
        for (i, t) in f.backbone.iter().enumerate() {
            check(format!("{stem}.feat{i}"), t);
        }
        for i in 0..5 {
            check(format!("{stem}.reduce{i}"), &f.reduced[i]);
            check(format!("{stem}.tokens{i}"), &f.tokens[i]);
        }
        for j in 1..5 {
            check(format!("{stem}.query{j}"), &f.queries[j - 1]);
        }
        check(format!("{stem}.pooled"), &f.pooled);
        let s: Vec<f32> = refs[&format!("{stem}.score")].to_vec1().unwrap();
        println!("  score ours {:.7} pyiqa {:.7}", f.score, s[0]);
        ours.push(f.score as f32);
        theirs.push(s[0]);
    }
    let n = ours.len();
    let (abs, rel) = rel_err(
        &Tensor::from_vec(ours, n, &dev).unwrap(),
        &Tensor::from_vec(theirs, n, &dev).unwrap(),
    );
    println!(
        "scores: max abs {abs:.3e}, rel (to max |score|) {rel:.3e}; worst feature rel {worst:.3e}"
    );
    assert!(rel <= TOL, "scores: relative error {rel:.3e} > {TOL:e}");
}

/// A deterministic pseudo-random tensor, uniform in [-a, a].
fn uniform(shape: &[usize], a: f32, seed: &mut u64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// A random CFANet (NR, ResNet-50, width 256) state dict under pyiqa's names; written from
/// pyiqa's module structure, independently of the loader.
fn random_state_dict() -> HashMap<String, Tensor> {
    let mut sd = HashMap::new();
    let mut seed = 7u64;
    let mut put = |sd: &mut HashMap<String, Tensor>, name: String, shape: &[usize], a: f32| {
        let t = uniform(shape, a, &mut seed);
        sd.insert(name, t);
    };
    let conv = |sd: &mut HashMap<String, Tensor>,
                put: &mut dyn FnMut(&mut HashMap<String, Tensor>, String, &[usize], f32),
                name: &str,
                bn: &str,
                (cin, cout, k): (usize, usize, usize)| {
        let a = (6.0 / (cin * k * k) as f32).sqrt();
        put(
            sd,
            format!("semantic_model.{name}.weight"),
            &[cout, cin, k, k],
            a,
        );
        sd.insert(
            format!("semantic_model.{bn}.weight"),
            Tensor::full(0.5f32, cout, &Device::Cpu).unwrap(),
        );
        put(sd, format!("semantic_model.{bn}.bias"), &[cout], 0.1);
        put(
            sd,
            format!("semantic_model.{bn}.running_mean"),
            &[cout],
            0.1,
        );
        sd.insert(
            format!("semantic_model.{bn}.running_var"),
            Tensor::ones(cout, DType::F32, &Device::Cpu).unwrap(),
        );
    };
    conv(&mut sd, &mut put, "conv1", "bn1", (3, 64, 7));
    let mut cin = 64;
    for (s, (blocks, width)) in [(3, 64), (4, 128), (6, 256), (3, 512)]
        .into_iter()
        .enumerate()
    {
        for b in 0..blocks {
            let p = format!("layer{}.{b}", s + 1);
            let inp = if b == 0 { cin } else { width * 4 };
            conv(
                &mut sd,
                &mut put,
                &format!("{p}.conv1"),
                &format!("{p}.bn1"),
                (inp, width, 1),
            );
            conv(
                &mut sd,
                &mut put,
                &format!("{p}.conv2"),
                &format!("{p}.bn2"),
                (width, width, 3),
            );
            conv(
                &mut sd,
                &mut put,
                &format!("{p}.conv3"),
                &format!("{p}.bn3"),
                (width, width * 4, 1),
            );
            if b == 0 {
                conv(
                    &mut sd,
                    &mut put,
                    &format!("{p}.downsample.0"),
                    &format!("{p}.downsample.1"),
                    (inp, width * 4, 1),
                );
            }
        }
        cin = width * 4;
    }
    let d = 256;
    let lin = |sd: &mut HashMap<String, Tensor>,
               put: &mut dyn FnMut(&mut HashMap<String, Tensor>, String, &[usize], f32),
               name: String,
               i: usize,
               o: usize| {
        put(
            sd,
            format!("{name}.weight"),
            &[o, i],
            (3.0 / i as f32).sqrt(),
        );
        put(sd, format!("{name}.bias"), &[o], 0.05);
    };
    let ln = |sd: &mut HashMap<String, Tensor>, name: String| {
        sd.insert(
            format!("{name}.weight"),
            Tensor::ones(d, DType::F32, &Device::Cpu).unwrap(),
        );
        sd.insert(
            format!("{name}.bias"),
            Tensor::zeros(d, DType::F32, &Device::Cpu).unwrap(),
        );
    };
    let layer = |sd: &mut HashMap<String, Tensor>,
                 put: &mut dyn FnMut(&mut HashMap<String, Tensor>, String, &[usize], f32),
                 p: &str,
                 attn: &str,
                 norms: usize| {
        put(sd, format!("{p}.{attn}.in_proj_weight"), &[3 * d, d], 0.1);
        put(sd, format!("{p}.{attn}.in_proj_bias"), &[3 * d], 0.05);
        lin(sd, put, format!("{p}.{attn}.out_proj"), d, d);
        lin(sd, put, format!("{p}.linear1"), d, 4 * d);
        lin(sd, put, format!("{p}.linear2"), 4 * d, d);
        for n in 1..=norms {
            ln(sd, format!("{p}.norm{n}"));
        }
    };
    for (i, c) in [64, 256, 512, 1024, 2048].into_iter().enumerate() {
        let g = format!("weight_pool.{i}");
        put(
            &mut sd,
            format!("{g}.splitconv.weight"),
            &[2 * c, c, 1, 1],
            (3.0 / c as f32).sqrt(),
        );
        put(&mut sd, format!("{g}.splitconv.bias"), &[2 * c], 0.1);
        for (k, (ci, co, ks)) in [(0, (c, 64, 1)), (2, (64, 64, 3)), (4, (64, 1, 3))] {
            put(
                &mut sd,
                format!("{g}.weight_blk.{k}.weight"),
                &[co, ci, ks, ks],
                (3.0 / (ci * ks * ks) as f32).sqrt(),
            );
            put(&mut sd, format!("{g}.weight_blk.{k}.bias"), &[co], 0.1);
        }
        put(
            &mut sd,
            format!("dim_reduce.{i}.0.weight"),
            &[d, c, 1, 1],
            (3.0 / c as f32).sqrt(),
        );
        put(&mut sd, format!("dim_reduce.{i}.0.bias"), &[d], 0.05);
        layer(
            &mut sd,
            &mut put,
            &format!("sa_attn_blks.{i}.layers.0"),
            "self_attn",
            2,
        );
        if i < 4 {
            let p = format!("attn_blks.{i}.layers.0");
            layer(&mut sd, &mut put, &p, "multihead_attn", 3);
        }
    }
    layer(&mut sd, &mut put, "attn_pool", "self_attn", 2);
    ln(&mut sd, "score_linear.0".into());
    lin(&mut sd, &mut put, "score_linear.1".into(), d, d);
    ln(&mut sd, "score_linear.3".into());
    lin(&mut sd, &mut put, "score_linear.4".into(), d, d);
    lin(&mut sd, &mut put, "score_linear.6".into(), d, 1);
    put(&mut sd, "h_emb".into(), &[1, d / 2, 32, 1], 0.5);
    put(&mut sd, "w_emb".into(), &[1, d / 2, 1, 32], 0.5);
    sd
}

fn textured(w: usize, h: usize) -> Image {
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

fn load_err(sd: HashMap<String, Tensor>) -> String {
    TopiqNr::from_state_dict(sd, Path::new("test.pth"), &Device::Cpu)
        .expect_err("loading should fail")
        .to_string()
}

#[test]
fn topiq_scores_deterministically_and_rejects_small_images() {
    let model =
        TopiqNr::from_state_dict(random_state_dict(), Path::new("test.pth"), &Device::Cpu).unwrap();
    assert_eq!(model.name(), "topiq");
    assert!(model.higher_is_better());
    let img = textured(96, 64);
    let a = model.score(&img).unwrap();
    let b = model.score(&img).unwrap();
    assert!(a.is_finite());
    assert_eq!(a.to_bits(), b.to_bits(), "same image, different scores");
    // A different image scores differently (the network is not constant).
    let c = model.score(&textured(64, 96)).unwrap();
    assert_ne!(a, c);
    // The smallest accepted size works; one pixel less is an error, not a panic.
    model.score(&textured(MIN_SIDE, MIN_SIDE)).unwrap();
    let e = model
        .score(&textured(MIN_SIDE - 1, 40))
        .unwrap_err()
        .to_string();
    assert!(e.contains("too small") && e.contains("topiq"), "{e}");
}

#[test]
fn topiq_checkpoint_errors_name_the_tensor() {
    let mut sd = random_state_dict();
    sd.remove("semantic_model.layer3.4.bn2.running_var");
    let e = load_err(sd);
    assert!(e.contains("semantic_model.layer3.4.bn2.running_var"), "{e}");

    let mut sd = random_state_dict();
    sd.insert(
        "attn_blks.2.layers.0.linear2.weight".into(),
        Tensor::zeros((256, 512), DType::F32, &Device::Cpu).unwrap(),
    );
    let e = load_err(sd);
    assert!(e.contains("attn_blks.2.layers.0.linear2.weight"), "{e}");

    // A full-reference checkpoint has no gated pooling; say so rather than fail later.
    let mut sd = random_state_dict();
    sd.remove("weight_pool.0.splitconv.weight");
    let e = load_err(sd);
    assert!(e.contains("full-reference"), "{e}");

    // The AVA head (10 classes) is refused from its shape.
    let mut sd = random_state_dict();
    sd.insert(
        "score_linear.6.weight".into(),
        Tensor::zeros((10, 256), DType::F32, &Device::Cpu).unwrap(),
    );
    let e = load_err(sd);
    assert!(e.contains("10-class"), "{e}");
}

#[test]
fn topiq_load_reports_missing_and_bad_files() {
    let dir = std::env::temp_dir().join(format!("ttpo-topiq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("nope.pth");
    let e = TopiqNr::load(&missing, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.pth"), "{e}");
    let junk = dir.join("junk.pth");
    std::fs::write(&junk, b"not a zip").unwrap();
    let e = TopiqNr::load(&junk, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("junk.pth") && e.contains("topiq"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
