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

/// Each stage's share of a whole job (they add up to 1), so that every adapter shows the
/// same overall progress; see [`Progress::overall`]. A job derives them from its model-call
/// counts (`Job::stage_weights`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StageWeights {
    /// Stage I's share.
    pub candidates: f64,
    /// Stage II's share.
    pub scoring: f64,
    /// Stage III's share.
    pub refine: f64,
}

impl StageWeights {
    /// Shares proportional to the given amounts of work (all zero: equal shares).
    pub fn from_units(candidates: f64, scoring: f64, refine: f64) -> Self {
        let sum = candidates + scoring + refine;
        if sum > 0.0 && sum.is_finite() {
            Self {
                candidates: candidates / sum,
                scoring: scoring / sum,
                refine: refine / sum,
            }
        } else {
            Self::from_units(1.0, 1.0, 1.0)
        }
    }
    /// The share of `stage` and the sum of the shares of the stages before it.
    pub fn span(&self, stage: Stage) -> (f64, f64) {
        match stage {
            Stage::Candidates => (0.0, self.candidates),
            Stage::Scoring => (self.candidates, self.scoring),
            Stage::Refine => (self.candidates + self.scoring, self.refine),
        }
    }
}

impl Default for StageWeights {
    fn default() -> Self {
        Self::from_units(1.0, 1.0, 1.0)
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
    /// The job's stage shares, for [`Progress::overall`].
    pub weights: StageWeights,
}

impl Progress {
    /// `step / total` in [0, 1]: progress within the stage.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.step as f64 / self.total as f64
        }
    }
    /// Progress of the whole job (Stage I → III) in [0, 1]: the shares of the stages before
    /// this one plus this stage's share times [`Progress::fraction`]. A stage run again (a
    /// second refine after a new choice) goes over its own span again.
    pub fn overall(&self) -> f64 {
        let (before, share) = self.weights.span(self.stage);
        (before + share * self.fraction()).clamp(0.0, 1.0)
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
    weights: StageWeights,
    done: usize,
    total: usize,
    cancel: &'a CancelToken,
    report: &'a mut ProgressFn<'b>,
}

impl<'a, 'b> Ticker<'a, 'b> {
    pub(crate) fn new(
        stage: Stage,
        total: usize,
        weights: StageWeights,
        cancel: &'a CancelToken,
        report: &'a mut ProgressFn<'b>,
    ) -> Result<Self> {
        cancel.check()?;
        (report)(&Progress {
            stage,
            step: 0,
            total,
            weights,
        });
        Ok(Self {
            stage,
            weights,
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
            weights: self.weights,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overall_walks_the_stages_in_order() {
        let weights = StageWeights::from_units(30.0, 10.0, 60.0);
        let at = |stage, step, total| {
            Progress {
                stage,
                step,
                total,
                weights,
            }
            .overall()
        };
        assert_eq!(at(Stage::Candidates, 0, 10), 0.0);
        assert!((at(Stage::Candidates, 5, 10) - 0.15).abs() < 1e-12);
        assert!((at(Stage::Scoring, 0, 4) - 0.3).abs() < 1e-12);
        assert!((at(Stage::Scoring, 4, 4) - 0.4).abs() < 1e-12);
        assert!((at(Stage::Refine, 3, 6) - 0.7).abs() < 1e-12);
        assert_eq!(at(Stage::Refine, 6, 6), 1.0);
        let equal = StageWeights::from_units(0.0, 0.0, 0.0);
        assert!((equal.scoring - 1.0 / 3.0).abs() < 1e-12);
    }
}
