//! The text conditioning of prompts already encoded, per backbone.
//!
//! Text encoders are needed for a few calls per job and the denoiser for hundreds, so the
//! backbones keep the encoders on disk and read them in only for prompts not seen before
//! (SD 2.x's CLIP is 1.4 GB in f32, FLUX.1's T5-XXL 9.5 GB in bf16: keeping them resident
//! would set the peak memory). The states are small and kept here, so repeated jobs with
//! the same prompts (the GIMP/OpenFX case) never read an encoder again.

use crate::error::Result;
use std::sync::Mutex;

/// Prompts whose states are kept (oldest dropped first).
pub const PROMPT_CACHE: usize = 16;

/// Prompt → states, at most [`PROMPT_CACHE`] of them.
pub(crate) struct PromptCache<T> {
    entries: Mutex<Vec<(String, T)>>,
}

impl<T: Clone> PromptCache<T> {
    pub(crate) fn new() -> Self {
        Self {
            entries: Mutex::new(Vec::new()),
        }
    }

    /// The states of `prompts`, in order. `encode` is called at most once, with the
    /// prompts not cached yet (each once, in first-seen order), and answers their states in
    /// that order; the encoders it reads can be dropped when it returns. One caller encodes
    /// at a time (the lock is held across `encode`), so two jobs never read the encoders at
    /// once.
    pub(crate) fn get_or_encode(
        &self,
        prompts: &[&str],
        encode: impl FnOnce(&[&str]) -> Result<Vec<T>>,
    ) -> Result<Vec<T>> {
        // A panic while the lock was held leaves at worst a missing entry: the cache stays
        // usable.
        let mut cache = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let find = |cache: &[(String, T)], p: &str| {
            cache.iter().find(|(q, _)| q == p).map(|(_, t)| t.clone())
        };
        let mut missing: Vec<&str> = Vec::new();
        for p in prompts {
            if find(&cache, p).is_none() && !missing.contains(p) {
                missing.push(p);
            }
        }
        let mut fresh: Vec<(String, T)> = Vec::new();
        if !missing.is_empty() {
            let states = encode(&missing)?;
            if states.len() != missing.len() {
                return Err(crate::error::Error::InvalidState(format!(
                    "text encoding answered {} states for {} prompts",
                    states.len(),
                    missing.len()
                )));
            }
            fresh = missing.iter().map(|p| p.to_string()).zip(states).collect();
            crate::device::release_free_memory();
        }
        let out = prompts
            .iter()
            .map(|p| {
                fresh
                    .iter()
                    .find(|(q, _)| q == p)
                    .map(|(_, t)| t.clone())
                    .or_else(|| find(&cache, p))
                    .expect("every prompt was cached or just encoded")
            })
            .collect();
        for entry in fresh {
            if cache.len() == PROMPT_CACHE {
                cache.remove(0);
            }
            cache.push(entry);
        }
        Ok(out)
    }
}
