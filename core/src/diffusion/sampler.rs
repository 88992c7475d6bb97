//! One sampling run's schedule, whichever family the backbone is: DDIM over a
//! noise-prediction (or v) model for SD 1.x / 2.x, Euler over a velocity model for the
//! rectified-flow families (FLUX.1, SD3). The TTPO stages are written against [`Schedule`]
//! only, so Stage I and Stage III are the same code on every backbone.
//!
//! Conventions shared by both families:
//! - index `i` runs over the run's `len()` steps from noisiest to cleanest;
//! - [`Schedule::timestep`] is what the network is conditioned on and what Stage III's phase
//!   boundaries T1/T2 compare with: the DDIM timestep (0..1000), or `1000 σ` for flow models,
//!   so T1 = 600 means "the noisiest 40 %" on both;
//! - an img2img strength `s` starts at index `N − ⌊N s⌋` on both (see [`Schedule::start`]).

use super::flow_scheduler::{FlowMatch, FlowSchedule};
use super::scheduler::Ddim;
use crate::error::{Error, Result};
use candle_core::Tensor;

/// A backbone's sampler: its scheduler config, from which each run's [`Schedule`] is made.
#[derive(Clone, Debug)]
pub enum Sampler {
    /// DDIM (SD 1.x / 2.x).
    Ddim(Ddim),
    /// Flow-match Euler (FLUX.1, SD3).
    Flow {
        /// The scheduler config and training sigmas.
        scheduler: FlowMatch,
        /// FluxPipeline's custom sigmas `linspace(1, 1/N, N)`; the SD3 pipelines let the
        /// scheduler space them itself.
        flux_sigmas: bool,
    },
}

/// The points of one run of `len()` steps.
#[derive(Clone, Debug)]
pub struct Schedule<'a> {
    kind: Kind<'a>,
}

#[derive(Clone, Debug)]
enum Kind<'a> {
    Ddim {
        ddim: &'a Ddim,
        timesteps: Vec<i64>,
        steps: usize,
    },
    Flow(FlowSchedule),
}

impl Sampler {
    /// The schedule of an `steps`-step run denoising a latent of `latent_hw` (height,
    /// width) latent cells. Flow models with dynamic shifting (FLUX.1-dev) shift by the
    /// image's token count, `(h/2)·(w/2)` (2×2 patches, as both FluxPipeline and the SD3
    /// pipelines count them); a tiled job passes the whole canvas, so every tile of a step
    /// shares one noise level, as the untiled run would have.
    pub fn schedule(&self, steps: usize, latent_hw: (usize, usize)) -> Result<Schedule<'_>> {
        let kind = match self {
            Sampler::Ddim(ddim) => Kind::Ddim {
                ddim,
                timesteps: ddim.timesteps(steps)?,
                steps,
            },
            Sampler::Flow {
                scheduler,
                flux_sigmas,
            } => {
                let tokens = (latent_hw.0 / 2) * (latent_hw.1 / 2);
                let mu = scheduler
                    .config()
                    .use_dynamic_shifting
                    .then(|| scheduler.mu(tokens));
                let schedule = if *flux_sigmas {
                    scheduler.schedule_with_sigmas(&FlowMatch::flux_sigmas(steps), mu)?
                } else {
                    scheduler.schedule(steps, mu)?
                };
                Kind::Flow(schedule)
            }
        };
        Ok(Schedule { kind })
    }

    /// Whether this is a rectified-flow sampler.
    pub fn is_flow(&self) -> bool {
        matches!(self, Sampler::Flow { .. })
    }
}

/// [`Schedule::start`] for a run of `steps` steps, without making the schedule (for
/// counting a job's model calls).
pub fn start_index(steps: usize, strength: f64) -> Result<usize> {
    Ddim::img2img_start(steps, strength)
}

impl Schedule<'_> {
    /// Steps in the run.
    pub fn len(&self) -> usize {
        match &self.kind {
            Kind::Ddim { timesteps, .. } => timesteps.len(),
            Kind::Flow(s) => s.len(),
        }
    }

    /// Whether the run has no step.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The network's time input at step `i`: the DDIM timestep, or `1000 σ` (f32, as
    /// diffusers computes it) for flow models.
    pub fn timestep(&self, i: usize) -> f64 {
        match &self.kind {
            Kind::Ddim { timesteps, .. } => timesteps[i] as f64,
            Kind::Flow(s) => s.timesteps[i] as f64,
        }
    }

    /// The first step of an img2img run of `strength` in [0, 1]: `N − min(⌊N s⌋, N)` (`N`
    /// for strength 0: no step, the input is kept). The same rule on every family, so one
    /// strength means the same number of denoising steps on every backbone of a mixed job.
    /// diffusers' SD pipelines use it too; its FLUX/SD3 img2img pipelines compute
    /// `int(N − N s)` in floating point, which is one step earlier when `N s` is not an
    /// integer (28 steps at 0.6: index 11, here 12) — we keep the and SD's rule
    /// (docs/ENGINE.md), and the conformance runs use strengths where the two agree.
    pub fn start(&self, strength: f64) -> Result<usize> {
        start_index(self.len(), strength)
    }

    /// The noised latent at step `i`: `√ᾱ x0 + √(1−ᾱ) ε` (DDIM) or `(1−σ) x0 + σ ε` (flow).
    pub fn add_noise(&self, x0: &Tensor, eps: &Tensor, i: usize) -> Result<Tensor> {
        match &self.kind {
            Kind::Ddim {
                ddim, timesteps, ..
            } => ddim.add_noise(x0, eps, timesteps[i]),
            Kind::Flow(s) => FlowMatch::scale_noise(x0, eps, s.sigmas[i]),
        }
    }

    /// The clean-latent estimate from the network's output `out` at step `i` on `x`.
    pub fn x0(&self, out: &Tensor, i: usize, x: &Tensor) -> Result<Tensor> {
        match &self.kind {
            Kind::Ddim {
                ddim, timesteps, ..
            } => ddim.x0(out, timesteps[i], x),
            Kind::Flow(s) => FlowMatch::x0(out, x, s.sigmas[i]),
        }
    }

    /// `d x0 / d x` at step `i` with the network output held fixed (Stage III's gradient):
    /// `1/√ᾱ` for ε-prediction, `√ᾱ` for v, and 1 for flow models (`x0 = x − σ v`).
    pub fn dx0_dx(&self, i: usize) -> f64 {
        match &self.kind {
            Kind::Ddim {
                ddim, timesteps, ..
            } => ddim.dx0_dsample(timesteps[i]),
            Kind::Flow(_) => 1.0,
        }
    }

    /// One sampler step from `i` to `i + 1` with the network output `out`. `eta > 0`
    /// (DDIM's variance noise, from `noise`) is for DDIM only: flow models have a
    /// deterministic Euler sampler, and asking for noise there is an error.
    pub fn step(
        &self,
        out: &Tensor,
        i: usize,
        x: &Tensor,
        eta: f64,
        noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        match &self.kind {
            Kind::Ddim {
                ddim,
                timesteps,
                steps,
            } => ddim.step(out, timesteps[i], *steps, x, eta, noise),
            Kind::Flow(s) => {
                if eta != 0.0 {
                    return Err(Error::option(
                        "eta",
                        "eta applies to DDIM (SD 1.x/2.x); flow models (FLUX.1, SD3) sample \
                         deterministically: set eta to 0",
                    ));
                }
                FlowMatch::step(s, i, out, x)
            }
        }
    }
}
