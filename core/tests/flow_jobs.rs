//! TTPO jobs on the rectified-flow backbones (issue #15): tiny FLUX.1-dev and SD3 folders
//! from the model generator through the production loader and the whole job (Stage I, II,
//! III) on a real photograph, and a mixed SD 2.x + FLUX job whose candidates are ranked
//! together. Numbers against diffusers are in conformance_flow.rs.

mod common;

use common::{copy_dir, fast_options, max_diff, photo, temp_dir, tiny_model};
use std::sync::Arc;
use ttpo::diffusion::tiny::TinyKind;
use ttpo::{Engine, EngineConfig, Error, Image, Job, Options};

fn engine(kinds: &[TinyKind]) -> Arc<Engine> {
    let folders: Vec<_> = kinds.iter().map(|&k| tiny_model(k)).collect();
    Arc::new(Engine::load(&folders, &EngineConfig::default()).unwrap())
}

fn input() -> Image {
    // 512x512 astronaut / 8 = 64x64: a real photo, small enough for a debug build.
    photo("astronaut.png", 8).crop(0, 0, 64, 48)
}

fn refine(engine: &Arc<Engine>, options: Options) -> (Image, Job) {
    let mut job = Job::new(engine.clone(), input(), options).unwrap();
    let out = job.run(&mut |_| {}).unwrap();
    (out, job)
}

#[test]
fn flow_families_load_from_their_folders() {
    let e = engine(&[TinyKind::FluxDev, TinyKind::Sd3, TinyKind::V]);
    let b = e.backbones();
    assert!(b[0].sampler().is_flow() && b[0].guidance_distilled());
    assert!(b[1].sampler().is_flow() && !b[1].guidance_distilled());
    assert!(!b[2].sampler().is_flow() && !b[2].guidance_distilled());
    // 16-channel latents; FLUX packs 2x2, SD3's patch is 2: sides in multiples of 16.
    for flow in &b[..2] {
        assert_eq!(flow.latent_channels(), 16);
        assert_eq!(flow.pad_multiple(), 16);
    }
}

#[test]
fn refine_on_each_flow_family_keeps_size_and_is_deterministic() {
    for kind in [TinyKind::FluxDev, TinyKind::Sd3] {
        let e = engine(&[kind]);
        let (a, job) = refine(&e, fast_options());
        assert_eq!((a.width(), a.height()), (64, 48), "{kind:?}");
        assert!(a.data().iter().all(|v| v.is_finite()), "{kind:?}");
        // Candidate 0 is the input, then one per strength; all at the input's size.
        assert_eq!(job.candidates().len(), 1 + fast_options().strengths.len());
        let (b, _) = refine(&e, fast_options());
        assert_eq!(max_diff(&a, &b), 0.0, "{kind:?}: same seed, same result");
        let mut other = fast_options();
        other.seed = 1;
        let (c, _) = refine(&e, other);
        assert!(
            max_diff(&a, &c) > 1e-3,
            "{kind:?}: another seed changes the result"
        );
        // Stage III moved away from the input (not a pass-through).
        assert!(max_diff(&a, &input()) > 1e-2, "{kind:?}");
    }
}

#[test]
fn mixed_sd2_and_flux_candidates_are_ranked_together() {
    let e = engine(&[TinyKind::V, TinyKind::FluxDev]);
    let options = fast_options();
    let n = options.strengths.len();
    let (out, job) = refine(&e, options);
    assert_eq!((out.width(), out.height()), (64, 48));
    let cands = job.candidates();
    assert_eq!(cands.len(), 1 + 2 * n);
    let from: Vec<usize> = cands[1..]
        .iter()
        .map(|c| c.spec.as_ref().unwrap().backbone)
        .collect();
    assert_eq!(from, [vec![0; n], vec![1; n]].concat());
    let scores = job.scores().expect("scored");
    assert_eq!(
        scores.fused.len(),
        cands.len(),
        "one fused score per candidate"
    );
    let (p, d) = job.choice().unwrap();
    assert!(p < cands.len() && d < cands.len() && p != d);
    // The choice is the argmax / argmin over candidates from both backbones.
    let best = scores
        .fused
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(p, best);
}

#[test]
fn eta_is_refused_on_flow_models_before_any_work() {
    let e = engine(&[TinyKind::FluxDev]);
    let mut o = fast_options();
    o.eta = 0.5;
    match Job::new(e, input(), o) {
        Err(Error::InvalidOption {
            name: "eta",
            reason,
        }) => {
            assert!(reason.contains("rectified-flow"), "{reason}")
        }
        Err(other) => panic!("expected an eta error, got {other}"),
        Ok(_) => panic!("a flow job accepted eta = 0.5"),
    }
}

#[test]
fn flux_text_encoders_are_read_only_for_new_prompts() {
    // A private copy: the test removes the T5 weights after the first encode.
    let src = tiny_model(TinyKind::FluxDev);
    let dir = temp_dir("flux-cache");
    copy_dir(&src, &dir);
    let e = Engine::load(&[&dir], &EngineConfig::default()).unwrap();
    let flux = &e.backbones()[0];
    let a = flux.encode_text(&["a photo of a cat"]).unwrap().remove(0);
    assert_eq!(a.states.dims()[0], 1);
    assert_eq!(a.pooled.as_ref().unwrap().dims(), [1, 32]);
    std::fs::remove_file(dir.join("text_encoder_2/model.safetensors")).unwrap();
    let again = flux.encode_text(&["a photo of a cat"]).unwrap().remove(0);
    let same = (&a.states - &again.states)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(same, 0.0, "cached states");
    let err = flux.encode_text(&["a new prompt"]).unwrap_err().to_string();
    assert!(err.contains("text_encoder_2"), "{err}");
}
