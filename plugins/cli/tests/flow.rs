//! The `ttpo` binary on rectified-flow models (issue #15): `refine` with a tiny FLUX.1-dev
//! and a tiny SD3 folder on a real photo, and a job whose candidates come from an SD 2.x
//! model and a FLUX model together.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use ttpo::diffusion::tiny::{write_tiny_model, TinyKind};

fn tiny(kind: TinyKind) -> PathBuf {
    let d = temp_dir("flow-model").join(format!("{kind:?}"));
    write_tiny_model(&d, kind, 3).expect("tiny model");
    d
}

fn refine(model: &Path, input: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let d = out.parent().unwrap();
    let r = run_ok(
        ttpo(d)
            .arg("--model-dir")
            .arg(model)
            .args(["--progress", "none", "refine"])
            .arg(input)
            .arg("-o")
            .arg(out)
            .args(fast(extra))
            .arg("--json"),
    );
    json_of(&r)
}

#[test]
fn refine_on_flux_and_sd3_is_deterministic_and_keeps_the_size() {
    let d = temp_dir("flow-refine");
    // Not a multiple of the models' latent grid: padded for the run, cut back after.
    let input = photo(&d, "in.png", 70, 0);
    for kind in [TinyKind::FluxDev, TinyKind::Sd3] {
        let model = tiny(kind);
        let (a, b) = (
            d.join(format!("{kind:?}-a.png")),
            d.join(format!("{kind:?}-b.png")),
        );
        let ja = refine(&model, &input, &a, &["--seed", "11"]);
        let jb = refine(&model, &input, &b, &["--seed", "11"]);
        assert_eq!(ja["size"], serde_json::json!([70, 70]), "{kind:?}");
        let img = image::open(&a).unwrap();
        assert_eq!((img.width(), img.height()), (70, 70));
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{kind:?}: same seed, same bytes"
        );
        assert_eq!(ja["candidates"], jb["candidates"]);
        // It did something: the refined image is not the input.
        assert!(mean_abs_diff(&a, &input) > 1e-3, "{kind:?}");
        // Another seed gives another image.
        let c = d.join(format!("{kind:?}-c.png"));
        refine(&model, &input, &c, &["--seed", "12"]);
        assert!(mean_abs_diff(&a, &c) > 1e-4, "{kind:?}: seed ignored");
    }
    // eta is DDIM's: a flow model refuses it with the option named.
    let out = d.join("eta.png");
    let r = ttpo(&d)
        .arg("--model-dir")
        .arg(tiny(TinyKind::FluxDev))
        .args(["--progress", "none", "refine"])
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .args(fast(&["--eta", "0.5"]))
        .output()
        .unwrap();
    assert!(!r.status.success());
    assert!(stderr(&r).contains("eta"), "{}", stderr(&r));
    assert!(!out.exists());
}

#[test]
fn candidates_from_sd2_and_flux_are_ranked_together() {
    let d = temp_dir("flow-mixed");
    let input = photo(&d, "in.png", 64, 5);
    let out = d.join("out.png");
    let flux = tiny(TinyKind::FluxDev);
    let j = refine(
        &tiny_model(),
        &input,
        &out,
        &["--seed", "11", "--candidate-model", flux.to_str().unwrap()],
    );
    let cands = j["candidates"].as_array().unwrap();
    // The input, then two strengths from each model.
    assert_eq!(cands.len(), 5, "{j}");
    let from = |b: u64| cands.iter().filter(|c| c["backbone"] == b).count();
    assert_eq!((from(0), from(1)), (2, 2), "{j}");
    // One fused score per candidate, all finite, over both models' candidates.
    for c in cands {
        assert!(c["fused"].as_f64().is_some_and(f64::is_finite), "{c}");
    }
    let (p, q) = (
        j["preferred"].as_u64().unwrap(),
        j["dispreferred"].as_u64().unwrap(),
    );
    assert_ne!(p, q);
    assert!(p < 5 && q < 5);
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
    // A candidate model that is neither a folder nor cached, offline: a clear error.
    let r = ttpo(&d)
        .env("HF_HUB_OFFLINE", "1")
        .arg("--model-dir")
        .arg(tiny_model())
        .args(["--progress", "none", "refine"])
        .arg(&input)
        .arg("-o")
        .arg(d.join("x.png"))
        .args(["--candidate-model", "nobody/no-such-model"])
        .args(FAST)
        .output()
        .unwrap();
    assert!(!r.status.success());
    assert!(
        stderr(&r).contains("nobody/no-such-model"),
        "{}",
        stderr(&r)
    );
}
