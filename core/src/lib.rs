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

pub mod candidates;
pub mod clip_iqa;
pub mod device;
pub mod diffusion;
pub mod error;
pub mod guidance;
pub mod image;
pub mod lpips;
pub mod noise;
pub mod ops;
pub mod options;
pub mod pipeline;
pub mod preference;
pub mod progress;
pub mod quality;
pub mod tiling;

pub use device::{DeviceChoice, Precision};
pub use error::{Error, Result};
pub use guidance::{RefineParams, RefineStart};
pub use image::{Decoded, Image, PadMode, DEFAULT_MAX_PIXELS};
pub use options::{Options, Preset, ScoringOptions, DEFAULT_PROMPT};
pub use pipeline::{Candidate, Engine, EngineConfig, Job, Selection, Timings};
pub use preference::{Fusion, Metric, Scores};
pub use progress::{CancelToken, Progress, Stage};
pub use tiling::{TilePlan, Tiling};

/// The crate version (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
