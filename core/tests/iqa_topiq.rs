//! TOPIQ-NR against pyiqa's own CFANet (ResNet-50, no-reference) on identical random
//! weights: scripts/conformance/iqa_reference_topiq.py writes `$TTPO_REFERENCE/iqa/topiq.pth`
//! (pyiqa's published `{'params': state_dict}` layout) and `topiq.safetensors` (input
//! images, intermediate features, scores). The comparison is `#[ignore]`d (run.sh runs it
//! with --include-ignored). The other tests need no reference: they build a random state
//! dict under pyiqa's tensor names here.

mod common;

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use ttpo::scoring::topiq::{TopiqNr, MIN_SIDE};
use ttpo::Metric;

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
        let img = common::image_from_u8(&refs[&format!("{stem}.image")]);
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

/// A random CFANet (NR, ResNet-50, width 256) state dict under pyiqa's names, written from
/// pyiqa's module structure independently of the loader.
struct StateDict {
    map: HashMap<String, Tensor>,
    seed: u64,
}

const D: usize = 256;

impl StateDict {
    /// Deterministic pseudo-random values, uniform in [-a, a].
    fn put(&mut self, name: String, shape: &[usize], a: f32) {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                self.seed = self
                    .seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((self.seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
            })
            .collect();
        let t = Tensor::from_vec(v, shape, &Device::Cpu).unwrap();
        self.map.insert(name, t);
    }

    fn fill(&mut self, name: String, n: usize, v: f32) {
        let t = Tensor::full(v, n, &Device::Cpu).unwrap();
        self.map.insert(name, t);
    }

    /// A backbone conv and its BatchNorm.
    fn conv_bn(&mut self, name: &str, bn: &str, (cin, cout, k): (usize, usize, usize)) {
        let a = (6.0 / (cin * k * k) as f32).sqrt();
        self.put(
            format!("semantic_model.{name}.weight"),
            &[cout, cin, k, k],
            a,
        );
        self.fill(format!("semantic_model.{bn}.weight"), cout, 0.5);
        self.put(format!("semantic_model.{bn}.bias"), &[cout], 0.1);
        self.put(format!("semantic_model.{bn}.running_mean"), &[cout], 0.1);
        self.fill(format!("semantic_model.{bn}.running_var"), cout, 1.0);
    }

    fn conv(&mut self, name: String, (cin, cout, k): (usize, usize, usize)) {
        let a = (3.0 / (cin * k * k) as f32).sqrt();
        self.put(format!("{name}.weight"), &[cout, cin, k, k], a);
        self.put(format!("{name}.bias"), &[cout], 0.1);
    }

    fn linear(&mut self, name: String, i: usize, o: usize) {
        self.put(format!("{name}.weight"), &[o, i], (3.0 / i as f32).sqrt());
        self.put(format!("{name}.bias"), &[o], 0.05);
    }

    fn layer_norm(&mut self, name: String) {
        self.fill(format!("{name}.weight"), D, 1.0);
        self.fill(format!("{name}.bias"), D, 0.0);
    }

    /// A transformer layer: attention `attn`, the FFN and `norms` LayerNorms.
    fn layer(&mut self, p: &str, attn: &str, norms: usize) {
        self.put(format!("{p}.{attn}.in_proj_weight"), &[3 * D, D], 0.1);
        self.put(format!("{p}.{attn}.in_proj_bias"), &[3 * D], 0.05);
        self.linear(format!("{p}.{attn}.out_proj"), D, D);
        self.linear(format!("{p}.linear1"), D, 4 * D);
        self.linear(format!("{p}.linear2"), 4 * D, D);
        for n in 1..=norms {
            self.layer_norm(format!("{p}.norm{n}"));
        }
    }
}

fn random_state_dict() -> HashMap<String, Tensor> {
    let mut sd = StateDict {
        map: HashMap::new(),
        seed: 7,
    };
    sd.conv_bn("conv1", "bn1", (3, 64, 7));
    let mut cin = 64;
    for (s, (blocks, width)) in [(3, 64), (4, 128), (6, 256), (3, 512)]
        .into_iter()
        .enumerate()
    {
        for b in 0..blocks {
            let p = format!("layer{}.{b}", s + 1);
            let inp = if b == 0 { cin } else { width * 4 };
            sd.conv_bn(&format!("{p}.conv1"), &format!("{p}.bn1"), (inp, width, 1));
            sd.conv_bn(
                &format!("{p}.conv2"),
                &format!("{p}.bn2"),
                (width, width, 3),
            );
            sd.conv_bn(
                &format!("{p}.conv3"),
                &format!("{p}.bn3"),
                (width, width * 4, 1),
            );
            if b == 0 {
                let (c, n) = (format!("{p}.downsample.0"), format!("{p}.downsample.1"));
                sd.conv_bn(&c, &n, (inp, width * 4, 1));
            }
        }
        cin = width * 4;
    }
    for (i, c) in [64, 256, 512, 1024, 2048].into_iter().enumerate() {
        let g = format!("weight_pool.{i}");
        sd.conv(format!("{g}.splitconv"), (c, 2 * c, 1));
        sd.conv(format!("{g}.weight_blk.0"), (c, 64, 1));
        sd.conv(format!("{g}.weight_blk.2"), (64, 64, 3));
        sd.conv(format!("{g}.weight_blk.4"), (64, 1, 3));
        sd.conv(format!("dim_reduce.{i}.0"), (c, D, 1));
        sd.layer(&format!("sa_attn_blks.{i}.layers.0"), "self_attn", 2);
        if i < 4 {
            sd.layer(&format!("attn_blks.{i}.layers.0"), "multihead_attn", 3);
        }
    }
    sd.layer("attn_pool", "self_attn", 2);
    sd.layer_norm("score_linear.0".into());
    sd.linear("score_linear.1".into(), D, D);
    sd.layer_norm("score_linear.3".into());
    sd.linear("score_linear.4".into(), D, D);
    sd.linear("score_linear.6".into(), D, 1);
    sd.put("h_emb".into(), &[1, D / 2, 32, 1], 0.5);
    sd.put("w_emb".into(), &[1, D / 2, 1, 32], 0.5);
    sd.map
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
    let img = common::textured(96, 64);
    let a = model.score(&img).unwrap();
    let b = model.score(&img).unwrap();
    assert!(a.is_finite());
    assert_eq!(a.to_bits(), b.to_bits(), "same image, different scores");
    // A different image scores differently (the network is not constant).
    let c = model.score(&common::textured(64, 96)).unwrap();
    assert_ne!(a, c);
    // The smallest accepted size works; one pixel less is an error, not a panic.
    model.score(&common::textured(MIN_SIDE, MIN_SIDE)).unwrap();
    let e = model
        .score(&common::textured(MIN_SIDE - 1, 40))
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
