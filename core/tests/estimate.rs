//! Time estimates (issue #16): the model calls an estimate counts are the calls the job then
//! makes, call by call, whole and tiled; measured costs are cached per tile shape; stages
//! already done are not counted again.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use ttpo::diffusion::sd::{StableDiffusion, Variant};
use ttpo::diffusion::tiny::TinyKind;
use ttpo::diffusion::{Backbone, TextStates};
use ttpo::{CallCounts, Engine, Job, Options, Selection};

/// Calls made through a [`Counting`] backbone.
#[derive(Default)]
struct Counters {
    unet_calls: AtomicUsize,
    /// Rows over all calls (with CFG, twice the latents).
    unet_rows: AtomicUsize,
    encodes: AtomicUsize,
    decodes: AtomicUsize,
}

impl Counters {
    /// The calls since the last take, and zero.
    fn take(&self, cfg: bool) -> CallCounts {
        let rows = self.unet_rows.swap(0, Ordering::SeqCst);
        CallCounts {
            unet_calls: self.unet_calls.swap(0, Ordering::SeqCst),
            unet_latents: if cfg { rows / 2 } else { rows },
            encode_tiles: self.encodes.swap(0, Ordering::SeqCst),
            decode_tiles: self.decodes.swap(0, Ordering::SeqCst),
        }
    }
}

/// The tiny model, counting the calls made through it.
struct Counting {
    sd: StableDiffusion,
    counters: Arc<Counters>,
}

impl Backbone for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    pass_through_backbone!(sd);
    fn encode(&self, image: &Tensor) -> ttpo::Result<Tensor> {
        self.counters.encodes.fetch_add(1, Ordering::SeqCst);
        self.sd.encode(image)
    }
    fn decode(&self, latent: &Tensor) -> ttpo::Result<Tensor> {
        self.counters.decodes.fetch_add(1, Ordering::SeqCst);
        self.sd.decode(latent)
    }
    fn model_output(
        &self,
        x: &Tensor,
        t: f64,
        text: &TextStates,
        guidance: Option<f64>,
    ) -> ttpo::Result<Tensor> {
        self.counters.unet_calls.fetch_add(1, Ordering::SeqCst);
        self.counters
            .unet_rows
            .fetch_add(x.dim(0)?, Ordering::SeqCst);
        self.sd.model_output(x, t, text, guidance)
    }
}

/// An engine over a counting tiny backbone, and its counters.
fn counting_engine() -> (Arc<Engine>, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let sd = StableDiffusion::load(
        &tiny_model(TinyKind::Epsilon),
        &Device::Cpu,
        DType::F32,
        Variant::Auto,
    )
    .unwrap();
    let backbone = Counting {
        sd,
        counters: counters.clone(),
    };
    let engine = Engine::from_backbones(vec![Box::new(backbone)]).unwrap();
    (Arc::new(engine), counters)
}

/// Estimates a fresh job, runs Stage I, chooses two non-input candidates, estimates again,
/// refines; checks every count against the calls made.
fn counts_match_the_calls(options: Options, w: usize, h: usize) {
    let (engine, counter) = counting_engine();
    let cfg = options.cfg_scale != 1.0;
    let mut job = Job::new(engine.clone(), synthetic(w, h), options).unwrap();

    let before = job.estimate().unwrap();
    assert_eq!(engine.measured_shapes(), 1);
    counter.take(cfg); // the probe's own calls
    for s in [before.candidates, before.scoring, before.refine] {
        assert!(s.is_finite() && s > 0.0, "{before:?}");
    }
    assert!(before.probe > 0.0);

    job.generate_candidates(&mut |_| {}).unwrap();
    let stage1 = counter.take(cfg);
    job.choose(Selection::Given {
        preferred: 1,
        dispreferred: 2,
    })
    .unwrap();

    let after = job.estimate().unwrap();
    // Same engine, same shapes: nothing measured again, no model call made.
    assert_eq!(engine.measured_shapes(), 1);
    assert_eq!(counter.take(cfg), CallCounts::default());
    assert_eq!((after.candidates, after.scoring), (0.0, 0.0), "{after:?}");
    assert!(after.refine > 0.0);

    job.refine(&mut |_| {}).unwrap();
    let stage3 = counter.take(cfg);
    assert_eq!(after.calls, stage3, "Stage III");
    assert_eq!(before.calls, stage1 + stage3, "Stage I + III");
    // Stage III's calls are costed with the same measurement both times.
    assert_eq!(before.refine, after.refine);
}

#[test]
fn an_estimate_counts_the_calls_a_whole_image_job_makes() {
    counts_match_the_calls(fast_options(), 64, 48);
}

#[test]
fn an_estimate_counts_the_calls_of_a_tiled_batched_job() {
    let mut o = fast_options();
    o.tiling.unet_tile = 64;
    o.tiling.vae_tile = 64;
    o.max_batch = 3;
    o.seeds_per_strength = 2;
    counts_match_the_calls(o, 150, 100);
}

#[test]
fn an_estimate_without_cfg_counts_single_rows() {
    let mut o = fast_options();
    o.cfg_scale = 1.0;
    counts_match_the_calls(o, 64, 64);
}

#[test]
fn each_tile_shape_is_measured_once_per_engine() {
    let (engine, _) = counting_engine();
    let mut whole = Job::new(engine.clone(), synthetic(64, 64), fast_options()).unwrap();
    let mut o = fast_options();
    o.tiling.unet_tile = 64;
    o.tiling.vae_tile = 96; // 12 latent cells: a shape the whole-image job does not use
    let mut tiled = Job::new(engine.clone(), synthetic(150, 100), o).unwrap();
    whole.estimate().unwrap();
    whole.estimate().unwrap();
    assert_eq!(engine.measured_shapes(), 1);
    let e = tiled.estimate().unwrap();
    assert_eq!(engine.measured_shapes(), 2);
    tiled.estimate().unwrap();
    assert_eq!(engine.measured_shapes(), 2);
    assert!(e.total() > 0.0 && e.total().is_finite());
}
