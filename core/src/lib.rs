//! TTPO — Test-Time Preference Optimization for image restoration, on candle.
//!
//! Given a restored image, the engine (I) makes candidates with a pretrained diffusion model
//! by img2img at several strengths, (II) picks a preferred and a dispreferred candidate with
//! no-reference quality metrics (or a person's choice), and (III) re-runs diffusion guided
//! by the two, keeping the input's structure and moving fine texture toward the preferred.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ttpo::{Engine, EngineConfig, Image, Job, Options};
//! let engine = Arc::new(Engine::load(&["models/sd21-base"], &EngineConfig::default())?);
//! let mut job = Job::new(engine, Image::open("photo.png")?, Options::default())?;
//! let refined = job.run(&mut |p| eprintln!("{} {}/{}", p.stage.name(), p.step, p.total))?;
//! refined.save("refined.png")?;
//! # Ok::<(), ttpo::Error>(())
//! ```
#![deny(missing_docs)]

// Public modules: the parts adapters, tools and tests reach into. The job's own stages
// (Stage I, III, the job, progress, errors) are private behind the re-exports below.
mod candidates;
pub mod device;
pub mod diffusion;
mod error;
mod estimate;
pub mod guidance;
pub mod image;
/// LPIPS, a full-reference metric only the tests use (feature `testing`).
#[cfg(feature = "testing")]
pub mod lpips;
pub mod noise;
pub mod ops;
pub mod options;
mod pipeline;
mod progress;
/// Restoration networks (Real-ESRGAN, RDN super-resolution) from their shipped files, tiled.
pub mod restore;
pub mod scoring;
pub mod sheet;
pub mod tiling;

pub use candidates::CandidateSpec;
pub use device::{DeviceChoice, Precision};
pub use error::{Error, Result};
pub use estimate::{CallCosts, CallCounts, Estimate};
pub use guidance::{RefineParams, RefineStart};
pub use image::{Decoded, Image, PadMode, DEFAULT_MAX_PIXELS};
pub use options::{Options, Preset, ScoringOptions, DEFAULT_PROMPT};
pub use pipeline::{
    metric_downscale_factor, Candidate, Engine, EngineConfig, Job, Selection, Timings, MIN_SIDE,
};
pub use progress::{CancelToken, Progress, ProgressFn, Stage, StageWeights};
pub use scoring::{Fusion, Metric, Scores};
pub use tiling::{TilePlan, Tiling};

/// The crate version (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
