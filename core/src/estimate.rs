//! How long a job will take on this device, said before it starts.
//!
//! A job's time is nearly all model calls (UNet steps, VAE tiles), and the job knows
//! exactly how many of each it will make (the same counts drive its progress). What it
//! cannot know is what one call costs here: that depends on the device, the precision, the
//! thread count and the tile size. So it measures it: a few probe calls on zero latents at
//! the job's own tile sizes, cached in the [`crate::Engine`] per backbone and tile shape, so
//! the second job of the same shape is estimated for free. Stage II is measured the same
//! way: the job's metrics on its input image, once.
//!
//! What the estimate leaves out (it is meant to say "about 3 minutes", not to the second):
//! prompt encoding (done before the probe and cached by the job), image conversions,
//! blending, the guidance arithmetic between steps, and VAE tiles that lie wholly in the
//! padding (counted, but skipped by the decoder).

use crate::diffusion::{guided_output, Prompts};
use crate::error::Result;
use crate::tiling::Tiler;
use candle_core::{DType, Tensor};
use std::time::Instant;

/// The model calls of one stage on one backbone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// UNet calls (each with up to the job's `max_batch` latent tiles).
    pub unet_calls: usize,
    /// Latent tiles over all UNet calls (CFG halves not counted).
    pub unet_latents: usize,
    /// VAE encoder calls (tiles).
    pub encode_tiles: usize,
    /// VAE decoder calls (tiles).
    pub decode_tiles: usize,
}

impl CallCounts {
    /// VAE calls of both kinds.
    pub fn vae_calls(&self) -> usize {
        self.encode_tiles + self.decode_tiles
    }
}

/// What one call of each kind costs on this device at one tile shape, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CallCosts {
    /// Fixed cost of a UNet call (weights streamed once per call, launch overheads).
    pub unet_call: f64,
    /// Cost of each latent tile in a UNet call (with its CFG half).
    pub unet_latent: f64,
    /// One VAE encoder tile.
    pub encode: f64,
    /// One VAE decoder tile.
    pub decode: f64,
}

impl CallCosts {
    /// Seconds for `n` calls of these kinds.
    pub fn seconds(&self, n: &CallCounts) -> f64 {
        n.unet_calls as f64 * self.unet_call
            + n.unet_latents as f64 * self.unet_latent
            + n.encode_tiles as f64 * self.encode
            + n.decode_tiles as f64 * self.decode
    }
}

/// Which measurement a [`CallCosts`] holds: backbone, UNet tile (h, w, latent units),
/// whether a batch of two was measured, VAE tile (h, w), network rows per latent (2 with
/// CFG).
pub(crate) type CostKey = (usize, (usize, usize), bool, (usize, usize), usize);

/// A job's expected time, by stage, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Stage I (every backbone's candidates).
    pub candidates: f64,
    /// Stage II (every metric on every candidate).
    pub scoring: f64,
    /// Stage III (refinement and its decode).
    pub refine: f64,
    /// Model calls the job will make (Stage I and III together).
    pub calls: CallCounts,
    /// Seconds the measurement itself took (0 when every cost was cached).
    pub probe: f64,
}

impl Estimate {
    /// The whole job.
    pub fn total(&self) -> f64 {
        self.candidates + self.scoring + self.refine
    }

    /// A duration for people: "45 s", "3 min 20 s", "1 h 05 min".
    pub fn describe(seconds: f64) -> String {
        if !seconds.is_finite() || seconds < 0.0 {
            return "unknown".into();
        }
        let s = seconds.round() as u64;
        match s {
            0..=59 => format!("{s} s"),
            60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
            _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
        }
    }
}

impl std::ops::Add for CallCounts {
    type Output = CallCounts;
    fn add(self, o: CallCounts) -> CallCounts {
        CallCounts {
            unet_calls: self.unet_calls + o.unet_calls,
            unet_latents: self.unet_latents + o.unet_latents,
            encode_tiles: self.encode_tiles + o.encode_tiles,
            decode_tiles: self.decode_tiles + o.decode_tiles,
        }
    }
}

/// Runs `f` and returns its time; `f` must bring its result to the host (so a GPU's queue
/// is drained inside the timed span).
fn timed(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed().as_secs_f64())
}

/// Forces `t` to be computed (a GPU returns before its kernels finish).
fn sync(t: &Tensor) -> Result<()> {
    t.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
    Ok(())
}

/// Measures the call costs of `tiler`'s tiles with the job's prompts and CFG scale.
///
/// On a GPU the first UNet call is a warm-up and not counted (it pays one-time kernel
/// loading and autotuning that the job pays once, not per call), and a second call with
/// two latents splits a call's fixed cost (launches, weight reads) from its per-latent cost
/// when the job batches. On the CPU a call's time is proportional to its rows and there is
/// little to warm up, so one call is measured and all of it counts per latent: the probe is
/// one UNet call and two VAE tiles (about 30 s for SD 2.1 at 512 px on a 2-core CPU, a few
/// percent of a default job). The VAE is measured once each way.
pub(crate) fn measure(tiler: &Tiler, prompts: &Prompts, cfg_scale: f64) -> Result<CallCosts> {
    let backbone = tiler.backbone();
    let device = backbone.device();
    let c = backbone.latent_channels();
    let f = backbone.vae_factor();
    let (uh, uw) = tiler.unet_tile();
    let unet = |n: usize| -> Result<f64> {
        let x = Tensor::zeros((n, c, uh, uw), DType::F32, device)?;
        timed(|| sync(&guided_output(backbone, &x, 500.0, prompts, cfg_scale)?))
    };
    let accelerated = !device.is_cpu();
    if accelerated {
        unet(1)?;
    }
    let one = unet(1)?;
    let (unet_call, unet_latent) = if accelerated && tiler.batches() {
        let two = unet(2)?;
        // Noise can make the difference negative; then call it all per-latent cost.
        let per = two - one;
        if per > 0.0 && per < one {
            (one - per, per)
        } else {
            (0.0, one)
        }
    } else {
        (0.0, one)
    };
    let (vh, vw) = tiler.vae_tile();
    let pixels = Tensor::zeros((1, 3, vh * f, vw * f), DType::F32, device)?;
    let encode = timed(|| sync(&backbone.encode(&pixels)?))?;
    let latent = Tensor::zeros((1, c, vh, vw), DType::F32, device)?;
    let decode = timed(|| sync(&backbone.decode(&latent)?))?;
    Ok(CallCosts {
        unet_call,
        unet_latent,
        encode,
        decode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(Estimate::describe(0.4), "0 s");
        assert_eq!(Estimate::describe(59.4), "59 s");
        assert_eq!(Estimate::describe(200.0), "3 min 20 s");
        assert_eq!(Estimate::describe(3900.0), "1 h 05 min");
        assert_eq!(Estimate::describe(f64::NAN), "unknown");
    }

    #[test]
    fn costs_weigh_each_kind_of_call() {
        let costs = CallCosts {
            unet_call: 0.5,
            unet_latent: 1.0,
            encode: 2.0,
            decode: 3.0,
        };
        let n = CallCounts {
            unet_calls: 10,
            unet_latents: 30,
            encode_tiles: 1,
            decode_tiles: 4,
        };
        assert_eq!(costs.seconds(&n), 5.0 + 30.0 + 2.0 + 12.0);
        assert_eq!((n + n).vae_calls(), 10);
    }
}
