//! Progress events and cooperative cancellation for long jobs.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The stage a progress event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Stage {
    /// Stage I: encoding the input, img2img candidates, decoding them.
    Candidates = 1,
    /// Stage II: scoring the candidates.
    Scoring = 2,
    /// Stage III: reward-guided denoising and the final decode.
    Refine = 3,
}

impl Stage {
    /// A lower-case name for logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Candidates => "candidates",
            Stage::Scoring => "scoring",
            Stage::Refine => "refine",
        }
    }
}

/// One progress event: `step` of `total` units of work done in `stage`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// The stage.
    pub stage: Stage,
    /// Units done so far (1-based after the first unit; 0 at the start).
    pub step: usize,
    /// Units in the stage.
    pub total: usize,
}

impl Progress {
    /// `step / total` in [0, 1].
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.step as f64 / self.total as f64
        }
    }
}

/// A cancellation flag shared between a job and any other thread.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, un-cancelled token.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the job to stop; it returns [`Error::Cancelled`] at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// Clears the flag so the job can be used again.
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
    /// `Err(Cancelled)` if cancellation was requested.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// The callback type for progress events.
pub type ProgressFn<'a> = &'a mut dyn FnMut(&Progress);

/// Counts work in one stage: checks the cancel token before each unit (so a cancel takes
/// effect within one model call) and reports after it.
pub(crate) struct Ticker<'a, 'b> {
    stage: Stage,
    done: usize,
    total: usize,
    cancel: &'a CancelToken,
    report: &'a mut ProgressFn<'b>,
}

impl<'a, 'b> Ticker<'a, 'b> {
    pub(crate) fn new(
        stage: Stage,
        total: usize,
        cancel: &'a CancelToken,
        report: &'a mut ProgressFn<'b>,
    ) -> Result<Self> {
        cancel.check()?;
        (report)(&Progress {
            stage,
            step: 0,
            total,
        });
        Ok(Self {
            stage,
            done: 0,
            total,
            cancel,
            report,
        })
    }
    /// Call before a unit of work.
    pub(crate) fn check(&self) -> Result<()> {
        self.cancel.check()
    }
    /// Call after a unit of work.
    pub(crate) fn tick(&mut self) {
        self.done = (self.done + 1).min(self.total);
        (self.report)(&Progress {
            stage: self.stage,
            step: self.done,
            total: self.total,
        });
    }
}
