//! Stage I: candidates by SDEdit-style img2img at several strengths and seeds.
//!
//! All strengths of one backbone share the same timestep grid; a strength only decides
//! where its candidate joins. So at each timestep every candidate that has started goes
//! through the network together, in batches of at most `max_batch` rows (both CFG halves
//! count): 15 candidates cost about as many model calls as the strongest one alone.

use crate::diffusion::{rows_per_latent, Backbone, Prompts};
use crate::error::Result;
use crate::noise::NoiseStream;
use crate::progress::Ticker;
use crate::tiling::Tiler;
use candle_core::Tensor;

/// How one candidate was made.
#[derive(Clone, Debug, PartialEq)]
pub struct CandidateSpec {
    /// Index of the backbone in the engine.
    pub backbone: usize,
    /// img2img strength.
    pub strength: f64,
    /// Which of the job's seeds (0-based).
    pub seed_index: usize,
    /// The noise seed actually used.
    pub seed: u64,
}

/// Sampler settings shared by all candidates.
#[derive(Clone, Debug)]
pub struct SamplerSettings {
    /// Scheduler steps of the full schedule (img2img runs a suffix of it).
    pub steps: usize,
    /// Guidance scale for this backbone: the CFG scale, or a guidance-distilled model's
    /// guidance input.
    pub cfg_scale: f64,
    /// DDIM eta (0 = deterministic sampler).
    pub eta: f64,
    /// Most latents per model call, CFG halves included (>= 2).
    pub max_batch: usize,
}

/// Model calls the batched loop makes for these start indices, given how many calls
/// `calls(k)` one timestep with `k` active latents takes.
pub fn model_calls(starts: &[usize], steps: usize, calls: impl Fn(usize) -> usize) -> usize {
    (0..steps)
        .map(|i| calls(starts.iter().filter(|&&s| s <= i).count()))
        .sum()
}

/// Latents per model call on `backbone` given the row cap and guidance (CFG takes two
/// rows per latent, a guidance-distilled model one).
pub fn per_call(settings: &SamplerSettings, backbone: &dyn Backbone) -> usize {
    (settings.max_batch / rows_per_latent(backbone, settings.cfg_scale)).max(1)
}

/// Runs img2img for every spec (all of one backbone, the tiler's) from the clean latent `z0`
/// (1, C, h, w); returns the final latents in spec order. Candidate `k` draws its noise from its own seed's stream. All
/// candidates active at a timestep go through the network together (in tiles and
/// batches, see [`Tiler::model_output`]), which ticks `ticker` once per network call.
pub(crate) fn img2img_batched(
    tiler: &Tiler,
    z0: &Tensor,
    specs: &[CandidateSpec],
    prompts: &Prompts,
    settings: &SamplerSettings,
    ticker: &mut Ticker,
) -> Result<Vec<Tensor>> {
    let schedule = tiler.schedule(settings.steps)?;
    let n = schedule.len();
    let starts: Vec<usize> = specs
        .iter()
        .map(|c| schedule.start(c.strength))
        .collect::<Result<_>>()?;
    let streams: Vec<NoiseStream> = specs.iter().map(|c| NoiseStream::new(c.seed, 1)).collect();
    let shape = z0.dims().to_vec();
    let mut latents: Vec<Tensor> = starts
        .iter()
        .zip(&streams)
        .map(|(&s, stream)| {
            if s >= n {
                Ok(z0.clone())
            } else {
                let eps = stream.tensor(&shape, z0.device())?;
                schedule.add_noise(z0, &eps, s)
            }
        })
        .collect::<Result<_>>()?;
    for i in 0..n {
        let active: Vec<usize> = (0..specs.len()).filter(|&k| starts[k] <= i).collect();
        if active.is_empty() {
            continue;
        }
        let refs: Vec<&Tensor> = active.iter().map(|&k| &latents[k]).collect();
        let x = Tensor::cat(&refs, 0)?;
        let out = tiler.model_output(
            &x,
            schedule.timestep(i),
            prompts,
            settings.cfg_scale,
            ticker,
        )?;
        let noise = if settings.eta > 0.0 {
            let parts: Vec<Tensor> = active
                .iter()
                .map(|&k| streams[k].child(1 + i as u64).tensor(&shape, z0.device()))
                .collect::<Result<_>>()?;
            Some(Tensor::cat(&parts, 0)?)
        } else {
            None
        };
        // The scheduler step is elementwise, so stepping all active latents at once gives
        // the same numbers as stepping each network batch separately.
        let next = schedule.step(&out, i, &x, settings.eta, noise.as_ref())?;
        for (j, &k) in active.iter().enumerate() {
            latents[k] = next.narrow(0, j, 1)?;
        }
    }
    Ok(latents)
}
