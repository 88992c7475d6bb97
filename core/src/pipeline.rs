//! The job API every adapter wraps: load models once into an [`Engine`]; a [`Job`] takes an
//! input image and [`Options`]; generate candidates → read them with scores → choose
//! (automatically or by index) → refine. Candidates are kept, so changing the choice and
//! refining again does not recompute them.

use crate::candidates::{img2img_batched, model_calls, per_call, CandidateSpec, SamplerSettings};
use crate::device::{self, DeviceChoice, Precision};
use crate::diffusion::model_folder::load_backbone;
use crate::diffusion::sampler::start_index;
use crate::diffusion::sd::Variant;
use crate::diffusion::{Backbone, Prompts};
use crate::error::{Error, Result};
use crate::estimate::{self, CallCosts, CallCounts, CostKey, Estimate};
use crate::guidance::{guided_denoise, RefineStart, Targets};
use crate::image::Image;
use crate::noise::NoiseStream;
use crate::options::Options;
use crate::progress::{CancelToken, Progress, Stage, StageWeights, Ticker};
use crate::restore::{self, RestoreKind, RestoreNet};
use crate::scoring::{self, score_all, Metric, Scores};
use crate::tiling::{TilePlan, Tiler};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// How to load an engine.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    /// Device choice.
    pub device: DeviceChoice,
    /// Precision; `None` = f32 on the CPU, bf16 on GPUs.
    pub precision: Option<Precision>,
    /// Which weight files to prefer.
    pub variant: Variant,
}

/// Loaded models, shared by any number of jobs (and threads).
pub struct Engine {
    backbones: Vec<Box<dyn Backbone>>,
    device: Device,
    dtype: DType,
    /// Measured model-call costs for time estimates (see `crate::estimate`).
    call_costs: Mutex<HashMap<CostKey, CallCosts>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.backbones.iter().map(|b| b.name()).collect();
        f.debug_struct("Engine")
            .field("backbones", &names)
            .field("dtype", &self.dtype)
            .finish()
    }
}

impl Engine {
    /// Loads one backbone per folder, of any supported family (SD 1.x/2.x, SD3, FLUX.1);
    /// the first is also used for Stage III.
    pub fn load<P: AsRef<Path>>(folders: &[P], config: &EngineConfig) -> Result<Self> {
        if folders.is_empty() {
            return Err(Error::option(
                "model",
                "at least one model folder is needed",
            ));
        }
        let device = device::open(config.device)?;
        let dtype = device::resolve_precision(&device, config.precision)?;
        let backbones = folders
            .iter()
            .map(|f| load_backbone(f.as_ref(), &device, dtype, config.variant))
            .collect::<Result<_>>()?;
        Ok(Self {
            backbones,
            device,
            dtype,
            call_costs: Mutex::default(),
        })
    }

    /// An engine over already-built backbones.
    pub fn from_backbones(backbones: Vec<Box<dyn Backbone>>) -> Result<Self> {
        let first = backbones
            .first()
            .ok_or_else(|| Error::option("model", "at least one backbone is needed"))?;
        let device = first.device().clone();
        Ok(Self {
            backbones,
            device,
            dtype: DType::F32,
            call_costs: Mutex::default(),
        })
    }

    /// The backbones.
    pub fn backbones(&self) -> &[Box<dyn Backbone>] {
        &self.backbones
    }
    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }
    /// The compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The cost of backbone `b`'s calls at `tiler`'s tile shapes: measured on the first
    /// request, then cached for every job on this engine. One measurement at a time (the
    /// lock is held across it), so two jobs never measure the same shape at once or each
    /// other's load.
    fn call_costs(
        &self,
        b: usize,
        tiler: &Tiler,
        prompts: &Prompts,
        cfg_scale: f64,
    ) -> Result<CallCosts> {
        let key = (
            b,
            tiler.unet_tile(),
            tiler.batches(),
            tiler.vae_tile(),
            crate::diffusion::rows_per_latent(self.backbones[b].as_ref(), cfg_scale),
        );
        let mut cache = self
            .call_costs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = cache.get(&key) {
            return Ok(*c);
        }
        let c = estimate::measure(tiler, prompts, cfg_scale)?;
        cache.insert(key, c);
        Ok(c)
    }

    /// How many call-cost measurements this engine holds (one per backbone and tile shape).
    pub fn measured_shapes(&self) -> usize {
        self.call_costs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The smallest input side a job accepts. Below it no quality metric can judge a candidate
/// (PIQE and BRISQUE work on 16-pixel blocks), so such a job would run all of Stage I only
/// to fail in Stage II; it is refused up front as a bad image instead.
pub const MIN_SIDE: usize = 16;

impl Options {
    /// Refuses, before any work starts (also before an adapter copies the pixels in), a
    /// `w x h` job whose images cannot fit in the memory this machine has free: the input,
    /// every candidate and the working copies are f32 RGB images kept whole (12 bytes per
    /// pixel each; docs/TILING.md measured the bound ≈ 0.2 GiB + (4 + candidates) × 12 B ×
    /// pixels). Without this a large input with a raised `max_pixels` ends in an allocation
    /// failure, which aborts the process.
    pub fn check_host_memory(&self, w: usize, h: usize) -> Result<()> {
        let candidates = self
            .strengths
            .len()
            .saturating_mul(self.seeds_per_strength)
            .saturating_add(1);
        let need = (w as u64)
            .saturating_mul(h as u64)
            .saturating_mul(12)
            .saturating_mul(4 + candidates as u64)
            .saturating_add(200 << 20);
        match crate::device::available_host_memory() {
            Some(free) if need > free => Err(Error::InvalidImage(format!(
                "{w}x{h} with {candidates} images kept needs about {:.1} GiB of memory, {:.1} GiB are free; downscale the image or use fewer strengths/seeds",
                need as f64 / (1u64 << 30) as f64,
                free as f64 / (1u64 << 30) as f64
            ))),
            _ => Ok(()),
        }
    }
}

/// One candidate of Stage I (index 0 is the input itself).
#[derive(Clone, Debug)]
pub struct Candidate {
    /// How it was made; `None` for the input.
    pub spec: Option<CandidateSpec>,
    /// The image, at the input's size.
    pub image: Image,
}

/// Wall seconds per stage of the last run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Stage I (encode, img2img, decode).
    pub candidates: f64,
    /// Stage II.
    pub scoring: f64,
    /// Stage III (encodes, guided sampling, decode).
    pub refine: f64,
}

/// Which candidates guide Stage III.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// The metrics' argmax / argmin.
    Auto,
    /// Explicit indices into the candidate list (a human choice).
    Given {
        /// The preferred candidate.
        preferred: usize,
        /// The dispreferred candidate.
        dispreferred: usize,
    },
}

/// One refinement job on one image.
pub struct Job {
    engine: Arc<Engine>,
    input: Image,
    options: Options,
    metrics: Vec<Box<dyn Metric>>,
    cancel: CancelToken,
    canvas: (usize, usize),
    prompts: Vec<Option<Prompts>>,
    z_r: Option<Tensor>,
    candidates: Vec<Candidate>,
    scores: Option<Scores>,
    choice: Option<(usize, usize)>,
    timings: Timings,
    weights: StageWeights,
    /// The restore step still to run on `input` (taken when Stage I starts).
    restore: Option<Box<dyn RestoreNet>>,
}

impl Job {
    /// Validates the input and options. Nothing heavy happens until a stage runs.
    ///
    /// With the `restore` option, the network's files are read here (a missing file is an
    /// error now, not after minutes of work) and the sizes checked are those of the
    /// restored image, which the stages then work on.
    pub fn new(engine: Arc<Engine>, input: Image, options: Options) -> Result<Self> {
        options.validate()?;
        let restore = match options.restore.as_deref() {
            None => None,
            Some(name) => {
                let kind = RestoreKind::from_name(name)?;
                let dir = options
                    .restore_dir
                    .clone()
                    .or_else(restore::default_dir)
                    .ok_or_else(|| {
                        Error::option(
                            "restore_dir",
                            "no folder for the restoration files: set restore_dir or \
                             TTPO_RESTORE_DIR",
                        )
                    })?;
                Some(restore::load_with(
                    kind,
                    dir,
                    engine.device(),
                    options.restore_noise,
                )?)
            }
        };
        let scale = restore.as_ref().map_or(1, |n| n.scale());
        let (w, h) = (input.width() * scale, input.height() * scale);
        let restored = if scale > 1 {
            format!(" (the input restored {scale}x)")
        } else {
            String::new()
        };
        if w < MIN_SIDE || h < MIN_SIDE {
            return Err(Error::InvalidImage(format!(
                "{w}x{h}{restored} is smaller than the {MIN_SIDE}x{MIN_SIDE} pixels a job needs (Stage II's metrics judge {MIN_SIDE}-pixel blocks)"
            )));
        }
        if w.saturating_mul(h) > options.max_pixels {
            return Err(Error::InvalidImage(format!(
                "{w}x{h}{restored} is larger than the {} pixels accepted; downscale the image or raise max_pixels (each candidate keeps 12 bytes per pixel in memory)",
                options.max_pixels
            )));
        }
        let first = &engine.backbones[0];
        let m = engine
            .backbones
            .iter()
            .map(|b| b.pad_multiple())
            .fold(1, lcm);
        let smallest = engine
            .backbones
            .iter()
            .map(|b| b.min_side())
            .max()
            .unwrap_or(0);
        let side = |v: usize| v.max(smallest).div_ceil(m) * m;
        let canvas = (side(w), side(h));
        if options.eta != 0.0 {
            if let Some(flow) = engine.backbones.iter().find(|b| b.sampler().is_flow()) {
                return Err(Error::option(
                    "eta",
                    format!(
                        "{} is a rectified-flow model, whose sampler is deterministic: eta \
                         applies to DDIM (SD 1.x/2.x) only; set it to 0",
                        flow.name()
                    ),
                ));
            }
        }
        // The working canvas (padded to the models' smallest side) is what is kept per image.
        options.check_host_memory(canvas.0, canvas.1)?;
        tracing::debug!(?canvas, backbone = first.name(), "job canvas");
        let metrics = scoring::build_metrics(&options.scoring)?;
        let n = engine.backbones.len();
        let mut job = Self {
            engine,
            input,
            options,
            metrics,
            cancel: CancelToken::new(),
            canvas,
            prompts: vec![None; n],
            z_r: None,
            candidates: Vec::new(),
            scores: None,
            choice: None,
            timings: Timings::default(),
            weights: StageWeights::default(),
            restore,
        };
        job.weights = job.stage_weights()?;
        Ok(job)
    }

    /// A job whose Stage I is already done, e.g. with candidates saved by an earlier run:
    /// `candidates[0]` must be the input itself and every candidate must have the input's
    /// size. Call [`Job::score_candidates`] (or [`Job::choose`] with given indices) next.
    /// A `restore` option is dropped: Stage I already ran, so a run that had a restore step
    /// passes its restored image (its candidate 0) as `input`.
    pub fn from_candidates(
        engine: Arc<Engine>,
        input: Image,
        mut options: Options,
        candidates: Vec<Candidate>,
    ) -> Result<Self> {
        options.restore = None;
        let mut job = Self::new(engine, input, options)?;
        if candidates.len() < 2 {
            return Err(Error::option(
                "candidates",
                "at least the input and one candidate are needed",
            ));
        }
        if candidates[0].spec.is_some() || candidates[0].image != job.input {
            return Err(Error::option(
                "candidates",
                "candidate 0 must be the input image",
            ));
        }
        let size = (job.input.width(), job.input.height());
        if let Some(i) = candidates
            .iter()
            .position(|c| (c.image.width(), c.image.height()) != size)
        {
            return Err(Error::option(
                "candidates",
                format!("candidate {i} is not {}x{}", size.0, size.1),
            ));
        }
        job.candidates = candidates;
        Ok(job)
    }

    /// A token that cancels this job from any thread.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }
    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }
    /// The input image; with a `restore` option, the restored image once Stage I started.
    pub fn input(&self) -> &Image {
        &self.input
    }
    /// The size of every image the job outputs (candidates, refined result): the input's,
    /// times the network's scale while a `restore` step is still to run.
    pub fn output_size(&self) -> (usize, usize) {
        let scale = self.restore.as_ref().map_or(1, |n| n.scale());
        (self.input.width() * scale, self.input.height() * scale)
    }
    /// Replaces the metric set (e.g. with caller-defined metrics).
    pub fn set_metrics(&mut self, metrics: Vec<Box<dyn Metric>>) {
        self.metrics = metrics;
        self.scores = None;
    }
    /// The candidates (empty before [`Job::generate_candidates`]).
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }
    /// The scores (after [`Job::generate_candidates`]).
    pub fn scores(&self) -> Option<&Scores> {
        self.scores.as_ref()
    }
    /// The current choice (preferred, dispreferred).
    pub fn choice(&self) -> Option<(usize, usize)> {
        self.choice
    }
    /// Stage times of the last runs.
    pub fn timings(&self) -> Timings {
        self.timings
    }
    /// The working canvas (padded width, height).
    pub fn canvas(&self) -> (usize, usize) {
        self.canvas
    }

    /// How backbone `b` cuts this job's canvas into tiles.
    fn tiler<'e>(&self, engine: &'e Engine, b: usize) -> Tiler<'e> {
        Tiler::new(
            engine.backbones[b].as_ref(),
            self.canvas,
            &self.options.tiling,
            per_call(&self.settings(b), engine.backbones[b].as_ref()),
            self.options.pad_mode,
        )
    }

    /// Tile sides and counts for the first backbone (the one Stage III uses). An image
    /// that fits in one tile has one UNet and one VAE tile.
    pub fn tile_plan(&self) -> TilePlan {
        self.tiler(&self.engine, 0).plan()
    }

    fn prompts(&mut self, b: usize) -> Result<Prompts> {
        if self.prompts[b].is_none() {
            let bb = &self.engine.backbones[b];
            self.prompts[b] = Some(Prompts::encode(
                bb.as_ref(),
                &self.options.prompt,
                &self.options.negative_prompt,
            )?);
        }
        Ok(self.prompts[b].clone().expect("just set"))
    }

    /// The guidance scale backbone `b` runs with: `flow_guidance` as the input of a
    /// guidance-distilled model (FLUX.1-dev), else the CFG scale.
    fn guidance_scale(&self, b: usize) -> f64 {
        if self.engine.backbones[b].guidance_distilled() {
            self.options.flow_guidance
        } else {
            self.options.cfg_scale
        }
    }

    fn settings(&self, b: usize) -> SamplerSettings {
        SamplerSettings {
            steps: self.options.steps,
            cfg_scale: self.guidance_scale(b),
            eta: self.options.eta,
            max_batch: self.options.max_batch,
        }
    }

    /// Stage I and II: makes every candidate, then scores them. `progress` is called on
    /// this thread at least once per model call.
    pub fn generate_candidates(&mut self, progress: &mut dyn FnMut(&Progress)) -> Result<()> {
        self.cancel.check()?;
        let start = Instant::now();
        let engine = self.engine.clone();
        let nb = engine.backbones.len();
        let tilers: Vec<Tiler> = (0..nb).map(|b| self.tiler(&engine, b)).collect();
        let total = self.restore_tiles() + self.candidate_calls(&tilers)?;
        let mut report: &mut dyn FnMut(&Progress) = progress;
        let cancel = self.cancel.clone();
        let mut ticker = Ticker::new(Stage::Candidates, total, self.weights, &cancel, &mut report)?;
        // The restore step reports as the first units of Stage I: it makes Stage I's input,
        // and the C ABI's three stages stay as they are. It runs once; the restored image
        // is the job's input from then on.
        if let Some(net) = self.restore.take() {
            let restored = restore::restore_image(
                net.as_ref(),
                &self.input,
                restore::JOB_TILE,
                restore::JOB_OVERLAP,
                &mut |done, _| {
                    if done > 0 {
                        ticker.tick();
                    }
                    ticker.check().is_ok()
                },
            );
            match restored {
                Ok(image) => self.input = image,
                Err(e) => {
                    self.restore = Some(net);
                    return Err(e);
                }
            }
        }
        let (w, h) = (self.input.width(), self.input.height());
        let mut candidates = vec![Candidate {
            spec: None,
            image: self.input.clone(),
        }];
        for (b, tiler) in tilers.iter().enumerate() {
            let prompts = self.prompts(b)?;
            let z0 = tiler.encode(&self.input, &mut ticker)?;
            if b == 0 {
                self.z_r = Some(z0.clone());
            }
            let specs = self.candidate_specs(b);
            let settings = self.settings(b);
            let latents = img2img_batched(tiler, &z0, &specs, &prompts, &settings, &mut ticker)?;
            for (spec, z) in specs.into_iter().zip(&latents) {
                let image = tiler.decode(z, w, h, &mut ticker)?;
                candidates.push(Candidate {
                    spec: Some(spec),
                    image,
                });
            }
        }
        self.timings.candidates = start.elapsed().as_secs_f64();
        self.candidates = candidates;
        self.scores = None;
        self.choice = None;
        self.score_candidates(report)
    }

    /// Stage II alone (re-)scores the existing candidates with the current metric set.
    pub fn score_candidates(&mut self, progress: &mut dyn FnMut(&Progress)) -> Result<()> {
        if self.candidates.is_empty() {
            return Err(Error::InvalidState(
                "no candidates yet: generate candidates first".into(),
            ));
        }
        let start = Instant::now();
        let mut report: &mut dyn FnMut(&Progress) = progress;
        let cancel = self.cancel.clone();
        let mut ticker = Ticker::new(
            Stage::Scoring,
            self.metrics.len() * self.candidates.len(),
            self.weights,
            &cancel,
            &mut report,
        )?;
        let first = &self.candidates[0].image;
        let factor = metric_downscale_factor(
            first.width(),
            first.height(),
            self.options.scoring.metric_max_pixels,
        );
        let small: Option<Vec<Image>> = (factor > 1).then(|| {
            self.candidates
                .iter()
                .map(|c| c.image.box_downscale(factor))
                .collect()
        });
        let images: Vec<&Image> = match &small {
            Some(small) => small.iter().collect(),
            None => self.candidates.iter().map(|c| &c.image).collect(),
        };
        let scores = score_all(
            &self.metrics,
            &images,
            self.options.scoring.fusion,
            &mut ticker,
        )?;
        self.choice = Some((scores.preferred, scores.dispreferred));
        self.scores = Some(scores);
        self.timings.scoring = start.elapsed().as_secs_f64();
        Ok(())
    }

    /// Sets the preferred and dispreferred candidates.
    pub fn choose(&mut self, selection: Selection) -> Result<(usize, usize)> {
        let n = self.candidates.len();
        if n == 0 {
            return Err(Error::InvalidState(
                "no candidates yet: generate candidates first".into(),
            ));
        }
        let choice = match selection {
            Selection::Auto => {
                let s = self
                    .scores
                    .as_ref()
                    .ok_or_else(|| Error::InvalidState("candidates are not scored".into()))?;
                (s.preferred, s.dispreferred)
            }
            Selection::Given {
                preferred,
                dispreferred,
            } => {
                if preferred >= n || dispreferred >= n {
                    return Err(Error::option(
                        "selection",
                        format!("indices must be below {n}, got {preferred} and {dispreferred}"),
                    ));
                }
                if preferred == dispreferred {
                    return Err(Error::option(
                        "selection",
                        "the preferred and dispreferred candidates must differ",
                    ));
                }
                (preferred, dispreferred)
            }
        };
        self.choice = Some(choice);
        Ok(choice)
    }

    /// Stage III with the current choice; returns the refined image at the input's size.
    pub fn refine(&mut self, progress: &mut dyn FnMut(&Progress)) -> Result<Image> {
        let (pw, pl) = self.choice.ok_or_else(|| {
            Error::InvalidState(
                "refine needs candidates and a choice: generate candidates first".into(),
            )
        })?;
        self.cancel.check()?;
        let start = Instant::now();
        let prompts = self.prompts(0)?;
        let engine = self.engine.clone();
        let params = self.options.refine.clone();
        let mut report: &mut dyn FnMut(&Progress) = progress;
        let cancel = self.cancel.clone();
        let tiler = self.tiler(&engine, 0);
        let total = self.refine_calls(&tiler, Some((pw, pl)))?;
        let mut ticker = Ticker::new(Stage::Refine, total, self.weights, &cancel, &mut report)?;
        let z_r = match &self.z_r {
            Some(z) => z.clone(),
            None => tiler.encode(&self.input, &mut ticker)?,
        };
        let latent_of = |i: usize, ticker: &mut Ticker| -> Result<Tensor> {
            if i == 0 {
                ticker.check()?;
                ticker.tick();
                Ok(z_r.clone())
            } else {
                tiler.encode(&self.candidates[i].image, ticker)
            }
        };
        let z_w = latent_of(pw, &mut ticker)?;
        let z_l = latent_of(pl, &mut ticker)?;
        let targets = Targets::new(z_r, &z_w, &z_l, params.d0)?;
        let noise = NoiseStream::new(self.options.seed, 2);
        let z = guided_denoise(
            &tiler,
            &prompts,
            self.guidance_scale(0),
            &targets,
            &params,
            noise,
            &mut ticker,
        )?;
        let out = tiler.decode(&z, self.input.width(), self.input.height(), &mut ticker)?;
        self.timings.refine = start.elapsed().as_secs_f64();
        Ok(out)
    }

    /// The whole job with the automatic choice (or the one already made).
    pub fn run(&mut self, progress: &mut dyn FnMut(&Progress)) -> Result<Image> {
        self.run_with(progress, &mut |job| Ok(job.choice().expect("set before")))
    }

    /// The whole job: candidates (unless already made) and scores, then `chooser` decides
    /// which candidates guide Stage III, then the refinement. `chooser` sees the scored job
    /// with the current choice (the automatic one unless one was made before) and returns
    /// (preferred, dispreferred); an error from it (e.g. [`Error::Cancelled`]) ends the run.
    /// Every adapter's "run" is this, so a person's choice needs no copy of the sequence.
    pub fn run_with(
        &mut self,
        progress: &mut dyn FnMut(&Progress),
        chooser: &mut dyn FnMut(&Job) -> Result<(usize, usize)>,
    ) -> Result<Image> {
        if self.candidates.is_empty() {
            self.generate_candidates(progress)?;
        }
        if self.choice.is_none() {
            self.choose(Selection::Auto)?;
        }
        let (preferred, dispreferred) = chooser(self)?;
        // Only a changed choice is checked again: an automatic choice of one candidate for
        // both (all fused scores equal) stays usable as before.
        if Some((preferred, dispreferred)) != self.choice {
            self.choose(Selection::Given {
                preferred,
                dispreferred,
            })?;
        }
        self.cancel.check()?;
        self.refine(progress)
    }

    /// The candidates backbone `b` makes, in the order Stage I makes them.
    fn candidate_specs(&self, b: usize) -> Vec<CandidateSpec> {
        let o = &self.options;
        o.strengths
            .iter()
            .flat_map(|&strength| {
                (0..o.seeds_per_strength).map(move |seed_index| CandidateSpec {
                    backbone: b,
                    strength,
                    seed_index,
                    seed: o.seed.wrapping_add(seed_index as u64),
                })
            })
            .collect()
    }

    /// Model calls of Stage I on one backbone: the input's encode, every candidate's decode
    /// (VAE tiles each) and the batched UNet calls of the img2img loop.
    fn candidate_counts(&self, tiler: &Tiler) -> Result<CallCounts> {
        let o = &self.options;
        let starts: Vec<usize> = self
            .candidate_specs(0)
            .iter()
            .map(|c| start_index(o.steps, c.strength))
            .collect::<Result<_>>()?;
        let vae = tiler.vae_calls();
        Ok(CallCounts {
            unet_calls: model_calls(&starts, o.steps, |k| tiler.unet_calls(k)),
            unet_latents: model_calls(&starts, o.steps, |k| tiler.unet_latents(k)),
            encode_tiles: vae,
            decode_tiles: starts.len() * vae,
        })
    }

    /// Progress ticks of Stage I: one per model call on every backbone.
    fn candidate_calls(&self, tilers: &[Tiler]) -> Result<usize> {
        tilers.iter().try_fold(0, |sum, t| {
            let n = self.candidate_counts(t)?;
            Ok(sum + n.unet_calls + n.vae_calls())
        })
    }

    /// Model calls of Stage III for `choice` (`None`: two candidates that are not the
    /// input): the input's encode if Stage I did not keep it, one encode per chosen latent,
    /// the sampler's network calls, the decode. Also returns the ticks that are not model
    /// calls: a chosen input reuses its kept latent, one tick.
    fn refine_counts(
        &self,
        tiler: &Tiler,
        choice: Option<(usize, usize)>,
    ) -> Result<(CallCounts, usize)> {
        let params = &self.options.refine;
        let sampler_steps = match params.start {
            RefineStart::Noise => params.steps,
            RefineStart::Strength(s) => params.steps - start_index(params.steps, s)?,
        };
        let vae = tiler.vae_calls();
        let (pw, pl) = choice.unwrap_or((1, 2));
        let input = if self.z_r.is_some() || choice.is_none() {
            0
        } else {
            vae
        };
        let encodes = |i: usize| if i == 0 { 0 } else { vae };
        let reused = [pw, pl].iter().filter(|&&i| i == 0).count();
        Ok((
            CallCounts {
                unet_calls: sampler_steps * tiler.unet_calls(1),
                unet_latents: sampler_steps * tiler.unet_latents(1),
                encode_tiles: input + encodes(pw) + encodes(pl),
                decode_tiles: vae,
            },
            reused,
        ))
    }

    /// Tiles of the restore step still to run (0 without one, or once it ran).
    fn restore_tiles(&self) -> usize {
        self.restore.as_ref().map_or(0, |_| {
            let (w, h) = (self.input.width(), self.input.height());
            restore::tile_count(w, h, restore::JOB_TILE, restore::JOB_OVERLAP)
        })
    }

    /// Seconds the restore step still takes (0 without one): one call on a small zero tile,
    /// timed, scaled by the pixels of the job's tiles, since these networks are
    /// convolutional and their time grows with the pixels. A small probe, because one
    /// full 256-pixel Real-ESRGAN tile takes seconds on a CPU; what it leaves out is the
    /// blending between tiles (cheap next to the network).
    fn restore_seconds(&self) -> Result<f64> {
        const PROBE: usize = 48;
        let Some(net) = &self.restore else {
            return Ok(0.0);
        };
        let x = Tensor::zeros((1, 3, PROBE, PROBE), DType::F32, net.device())?;
        let start = Instant::now();
        // Reading a value back waits for a GPU to finish.
        net.forward(&x)?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        let per_pixel = start.elapsed().as_secs_f64() / (PROBE * PROBE) as f64;
        let (w, h) = (self.input.width(), self.input.height());
        let tile_pixels = w.min(restore::JOB_TILE) * h.min(restore::JOB_TILE);
        Ok(per_pixel * (self.restore_tiles() * tile_pixels) as f64)
    }

    /// Progress ticks of Stage III for `choice`.
    fn refine_calls(&self, tiler: &Tiler, choice: Option<(usize, usize)>) -> Result<usize> {
        let (n, reused) = self.refine_counts(tiler, choice)?;
        Ok(n.unet_calls + n.vae_calls() + reused)
    }

    /// What [`Job::run`] would still take on this device, by stage: the job's model-call
    /// counts times each call's cost, measured here on the engine's first request for
    /// these tile shapes (a few seconds: see `crate::estimate`) and cached in the engine.
    /// Stages already done (candidates made, scores present) count as zero. Encodes the
    /// prompts if they are not yet, which the job would do anyway.
    pub fn estimate(&mut self) -> Result<Estimate> {
        let start = Instant::now();
        let engine = self.engine.clone();
        let mut calls = CallCounts::default();
        let mut candidates = 0.0;
        let first = self.tiler(&engine, 0);
        let first_costs =
            engine.call_costs(0, &first, &self.prompts(0)?, self.guidance_scale(0))?;
        if self.candidates.is_empty() {
            candidates += self.restore_seconds()?;
            for b in 0..engine.backbones.len() {
                let tiler = self.tiler(&engine, b);
                let costs = match b {
                    0 => first_costs,
                    _ => engine.call_costs(b, &tiler, &self.prompts(b)?, self.guidance_scale(b))?,
                };
                let n = self.candidate_counts(&tiler)?;
                candidates += costs.seconds(&n);
                calls = calls + n;
            }
        }
        let scoring = if self.scores.is_some() {
            0.0
        } else {
            let count = match self.candidates.len() {
                0 => 1 + engine.backbones.len() * self.candidate_specs(0).len(),
                n => n,
            };
            count as f64 * self.metric_seconds()
        };
        let (n, _) = self.refine_counts(&first, self.choice)?;
        calls = calls + n;
        Ok(Estimate {
            candidates,
            scoring,
            refine: first_costs.seconds(&n),
            calls,
            probe: start.elapsed().as_secs_f64(),
        })
    }

    /// Seconds every metric of the job takes on one image: measured on the input at the
    /// size Stage II scores it (a candidate has the input's size). A metric that fails on
    /// the input counts its time until it failed, as in Stage II.
    fn metric_seconds(&self) -> f64 {
        let factor = metric_downscale_factor(
            self.input.width(),
            self.input.height(),
            self.options.scoring.metric_max_pixels,
        );
        let small = (factor > 1).then(|| self.input.box_downscale(factor));
        let image = small.as_ref().unwrap_or(&self.input);
        let start = Instant::now();
        for m in &self.metrics {
            let _ = m.score(image);
        }
        start.elapsed().as_secs_f64()
    }

    /// The stages' shares of the whole job, for [`Progress::overall`]. Why model calls: the
    /// UNet and VAE calls are nearly all of a job's time, and a call costs about the same in
    /// both stages (same backbone, same tiles), so the share of calls is the share of time,
    /// whatever the strengths, seeds, steps and tiles are; a fixed split (the adapters had
    /// 45/10/45 and 0.6/0.4 x 0.8/0.2) is wrong as soon as one of them changes. (Calls with
    /// more latents in a batch cost more; Stage I's batched calls are counted as one each, so
    /// its share is low by that much.) Stage II makes no model calls; it counts as one unit
    /// per candidate image, a rough guess at what the default metrics cost next to a
    /// UNet call, not a measurement. Computed once per job, so repeated stages keep their span.
    pub fn stage_weights(&self) -> Result<StageWeights> {
        let engine = self.engine.clone();
        let tilers: Vec<Tiler> = (0..engine.backbones.len())
            .map(|b| self.tiler(&engine, b))
            .collect();
        // A restore tile counts as one unit like a model call: about right for Real-ESRGAN
        // x4plus' 256-pixel tiles next to a 512-pixel UNet call, generous for the small nets.
        let stage1 = self.restore_tiles() + self.candidate_calls(&tilers)?;
        let n_candidates = 1 + engine.backbones.len() * self.candidate_specs(0).len();
        let stage3 = self.refine_calls(&tilers[0], None)?;
        Ok(StageWeights::from_units(
            stage1 as f64,
            n_candidates as f64,
            stage3 as f64,
        ))
    }
}

/// The integer box-filter factor that brings `w x h` to at most `max_pixels` (1 = none).
/// Why a downscale and not tiles: the metrics were fitted on images of about 0.5 MP seen
/// whole (NIQE/BRISQUE natural-scene statistics, PIQE's block map, CLIP at 224 px), so a
/// whole-image view at that scale is what they can judge; tiles would each be scored out
/// of context and cost the full resolution per metric. One factor for every candidate
/// keeps the comparison fair. Box averaging is exact anti-aliasing for integer factors.
pub fn metric_downscale_factor(w: usize, h: usize, max_pixels: usize) -> usize {
    let mut k = 1;
    while (w / k).max(1) * (h / k).max(1) > max_pixels {
        k += 1;
    }
    k
}

fn lcm(a: usize, b: usize) -> usize {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    a / gcd(a, b) * b
}
