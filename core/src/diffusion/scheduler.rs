//! DDIM (Song et al. 2020) as diffusers implements it for Stable Diffusion, with the pieces
//! TTPO needs in the open: `alphas_cumprod`, x0 from a model output, the step with eta, the
//! inversion step and the img2img start index.
//!
//! Configured from a diffusers `scheduler_config.json`. SD repos often ship a PNDM or other
//! scheduler config; as with diffusers' `DDIMScheduler.from_config`, only the shared fields
//! (betas, prediction type, spacing, offset) are read and DDIM is used.

use crate::error::{Error, Result};
use candle_core::Tensor;
use serde::Deserialize;
use std::path::Path;

/// What the network predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prediction {
    /// The added noise (SD 1.x, SD 2.x base).
    Epsilon,
    /// The velocity `v = sqrt(a) eps - sqrt(1-a) x0` (SD 2.x 768).
    V,
    /// The clean sample itself.
    Sample,
}

/// How inference timesteps are spread over the training range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spacing {
    /// `arange(N) * (T // N)` reversed, plus `steps_offset` (SD's default).
    Leading,
    /// `round(arange(T, 0, -T/N)) - 1`.
    Trailing,
    /// `round(linspace(0, T-1, N))` reversed.
    Linspace,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default = "default_train_steps")]
    num_train_timesteps: usize,
    #[serde(default = "default_beta_start")]
    beta_start: f64,
    #[serde(default = "default_beta_end")]
    beta_end: f64,
    #[serde(default = "default_schedule")]
    beta_schedule: String,
    #[serde(default)]
    trained_betas: Option<Vec<f64>>,
    #[serde(default)]
    clip_sample: bool,
    #[serde(default = "default_clip_range")]
    clip_sample_range: f64,
    #[serde(default)]
    set_alpha_to_one: Option<bool>,
    #[serde(default)]
    steps_offset: usize,
    #[serde(default = "default_prediction")]
    prediction_type: String,
    #[serde(default = "default_spacing")]
    timestep_spacing: String,
    #[serde(default)]
    rescale_betas_zero_snr: bool,
    #[serde(default)]
    thresholding: bool,
}
fn default_train_steps() -> usize {
    1000
}
fn default_beta_start() -> f64 {
    0.0001
}
fn default_beta_end() -> f64 {
    0.02
}
fn default_schedule() -> String {
    "linear".into()
}
fn default_clip_range() -> f64 {
    1.0
}
fn default_prediction() -> String {
    "epsilon".into()
}
fn default_spacing() -> String {
    "leading".into()
}

/// The DDIM scheduler.
#[derive(Clone, Debug)]
pub struct Ddim {
    alphas_cumprod: Vec<f64>,
    final_alpha_cumprod: f64,
    /// What the model predicts.
    pub prediction: Prediction,
    /// Timestep spacing.
    pub spacing: Spacing,
    /// Added to "leading" timesteps.
    pub steps_offset: usize,
    /// Clip x0 to `[-clip, clip]` when set.
    pub clip_sample: Option<f64>,
}

impl Ddim {
    /// Reads `scheduler_config.json`.
    pub fn from_config_file(path: &Path) -> Result<Self> {
        let raw: RawConfig = super::config::read_json(path)?;
        let unsupported = |reason: String| Error::Unsupported {
            path: path.into(),
            reason,
        };
        if raw.rescale_betas_zero_snr {
            return Err(unsupported("rescale_betas_zero_snr".into()));
        }
        if raw.thresholding {
            return Err(unsupported("dynamic thresholding".into()));
        }
        let n = raw.num_train_timesteps;
        // The schedule is allocated from this number: bound it before anything is sized.
        super::config::check_size(path, "num_train_timesteps", n, super::config::MAX_LENGTH)?;
        if n < 2 {
            return Err(unsupported(format!("num_train_timesteps {n}")));
        }
        super::config::check_finite(path, "beta_start", raw.beta_start)?;
        super::config::check_finite(path, "beta_end", raw.beta_end)?;
        super::config::check_finite(path, "clip_sample_range", raw.clip_sample_range)?;
        if let Some(b) = &raw.trained_betas {
            super::config::check_size(
                path,
                "len(trained_betas)",
                b.len(),
                super::config::MAX_LENGTH,
            )?;
            if b.len() < 2 || b.iter().any(|v| !(0.0..1.0).contains(v)) {
                return Err(Error::InvalidFile {
                    path: path.into(),
                    reason: "trained_betas must hold at least 2 values in [0, 1)".into(),
                });
            }
        }
        let betas: Vec<f64> = match (&raw.trained_betas, raw.beta_schedule.as_str()) {
            (Some(b), _) => b.clone(),
            (None, "linear") => linspace_f32(raw.beta_start, raw.beta_end, n),
            (None, "scaled_linear") => scaled_linear_f32(raw.beta_start, raw.beta_end, n),
            (None, "squaredcos_cap_v2") => (0..n)
                .map(|i| {
                    let f = |t: f64| {
                        ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                            .cos()
                            .powi(2)
                    };
                    let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
                    (1.0 - f(t2) / f(t1)).min(0.999)
                })
                .collect(),
            (None, other) => return Err(unsupported(format!("beta_schedule {other:?}"))),
        };
        let prediction = match raw.prediction_type.as_str() {
            "epsilon" => Prediction::Epsilon,
            "v_prediction" => Prediction::V,
            "sample" => Prediction::Sample,
            other => return Err(unsupported(format!("prediction_type {other:?}"))),
        };
        let spacing = match raw.timestep_spacing.as_str() {
            "leading" => Spacing::Leading,
            "trailing" => Spacing::Trailing,
            "linspace" => Spacing::Linspace,
            other => return Err(unsupported(format!("timestep_spacing {other:?}"))),
        };
        let mut s = Self::from_betas(&betas, prediction);
        // diffusers' DDIM default is set_alpha_to_one=True when the key is absent.
        if !raw.set_alpha_to_one.unwrap_or(true) {
            s.final_alpha_cumprod = s.alphas_cumprod[0];
        }
        s.spacing = spacing;
        s.steps_offset = raw.steps_offset;
        s.clip_sample = raw.clip_sample.then_some(raw.clip_sample_range);
        Ok(s)
    }

    /// Stable Diffusion's own settings (scaled-linear betas 0.00085..0.012, leading spacing,
    /// offset 1, `set_alpha_to_one` false).
    pub fn stable_diffusion(prediction: Prediction) -> Self {
        let betas = scaled_linear_f32(0.00085, 0.012, 1000);
        let mut s = Self::from_betas(&betas, prediction);
        s.final_alpha_cumprod = s.alphas_cumprod[0];
        s.steps_offset = 1;
        s
    }

    fn from_betas(betas: &[f64], prediction: Prediction) -> Self {
        // diffusers keeps these in float32: `alphas = 1 - betas` in f32, then torch's CPU
        // `cumprod`, which accumulates in double and rounds each output to f32. Doing the
        // same (with f32 betas, see `linspace_f32`) reproduces every value bit for bit.
        let mut acc = 1f64;
        let alphas_cumprod = betas
            .iter()
            .map(|b| {
                acc *= (1.0f32 - *b as f32) as f64;
                acc as f32 as f64
            })
            .collect();
        Self {
            alphas_cumprod,
            final_alpha_cumprod: 1.0,
            prediction,
            spacing: Spacing::Leading,
            steps_offset: 0,
            clip_sample: None,
        }
    }

    /// `alphas_cumprod[t]` for every training timestep.
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    /// Number of training timesteps (1000 for SD).
    pub fn train_timesteps(&self) -> usize {
        self.alphas_cumprod.len()
    }

    /// `alphas_cumprod` at `t`, or the final value for `t < 0` (the step past the end).
    pub fn alpha(&self, t: i64) -> f64 {
        if t < 0 {
            self.final_alpha_cumprod
        } else {
            self.alphas_cumprod[(t as usize).min(self.alphas_cumprod.len() - 1)]
        }
    }

    /// The `steps` inference timesteps, from noisiest to cleanest.
    pub fn timesteps(&self, steps: usize) -> Result<Vec<i64>> {
        let t = self.train_timesteps();
        if steps == 0 || steps > t {
            return Err(Error::option(
                "steps",
                format!("must be in 1..={t}, got {steps}"),
            ));
        }
        let ts: Vec<i64> = match self.spacing {
            Spacing::Leading => {
                let ratio = t / steps;
                (0..steps)
                    .rev()
                    .map(|i| (i * ratio + self.steps_offset) as i64)
                    .collect()
            }
            Spacing::Trailing => {
                let ratio = t as f64 / steps as f64;
                // np.arange(T, 0, -ratio) has ceil(T / ratio) elements.
                let count = (t as f64 / ratio).ceil() as usize;
                (0..count)
                    .map(|i| round_half_even(t as f64 - i as f64 * ratio) as i64 - 1)
                    .collect()
            }
            Spacing::Linspace => linspace(0.0, (t - 1) as f64, steps)
                .into_iter()
                .rev()
                .map(|v| round_half_even(v) as i64)
                .collect(),
        };
        Ok(ts)
    }

    /// The distance between consecutive DDIM timesteps (diffusers uses `T // N` for every
    /// spacing).
    pub fn step_ratio(&self, steps: usize) -> i64 {
        (self.train_timesteps() / steps.max(1)) as i64
    }

    /// Index of the first timestep an img2img run of `strength` starts at, exactly as
    /// diffusers computes it: `N - min(floor(N * strength), N)`.
    pub fn img2img_start(steps: usize, strength: f64) -> Result<usize> {
        if !(0.0..=1.0).contains(&strength) || !strength.is_finite() {
            return Err(Error::option(
                "strength",
                format!("must be in [0, 1], got {strength}"),
            ));
        }
        let init = ((steps as f64 * strength).floor() as usize).min(steps);
        Ok(steps - init)
    }

    /// The clean-sample prediction x0 from a model output at timestep `t`.
    pub fn x0(&self, model_output: &Tensor, t: i64, sample: &Tensor) -> Result<Tensor> {
        let a = self.alpha(t);
        let x0 = match self.prediction {
            Prediction::Epsilon => {
                ((sample - (model_output * (1.0 - a).sqrt())?)? * (1.0 / a.sqrt()))?
            }
            Prediction::V => ((sample * a.sqrt())? - (model_output * (1.0 - a).sqrt())?)?,
            Prediction::Sample => model_output.clone(),
        };
        Ok(match self.clip_sample {
            Some(c) => x0.clamp(-c, c)?,
            None => x0,
        })
    }

    /// The noise prediction eps from a model output at `t`.
    pub fn eps(&self, model_output: &Tensor, t: i64, sample: &Tensor) -> Result<Tensor> {
        let a = self.alpha(t);
        Ok(match self.prediction {
            Prediction::Epsilon => model_output.clone(),
            Prediction::V => ((model_output * a.sqrt())? + (sample * (1.0 - a).sqrt())?)?,
            Prediction::Sample => {
                ((sample - (model_output * a.sqrt())?)? * (1.0 / (1.0 - a).sqrt()))?
            }
        })
    }

    /// d x0 / d sample with the model output held fixed (used by Stage III's gradient).
    pub fn dx0_dsample(&self, t: i64) -> f64 {
        let a = self.alpha(t);
        match self.prediction {
            Prediction::Epsilon => 1.0 / a.sqrt(),
            Prediction::V => a.sqrt(),
            Prediction::Sample => 0.0,
        }
    }

    /// One DDIM step from `t` to `t - T/N`. With `eta > 0`, `noise` supplies the variance
    /// noise (same shape as `sample`).
    pub fn step(
        &self,
        model_output: &Tensor,
        t: i64,
        steps: usize,
        sample: &Tensor,
        eta: f64,
        noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        let prev = t - self.step_ratio(steps);
        let (a_t, a_prev) = (self.alpha(t), self.alpha(prev));
        let x0 = self.x0(model_output, t, sample)?;
        let eps = self.eps(model_output, t, sample)?;
        let variance = (1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev);
        let std = eta * variance.max(0.0).sqrt();
        let dir = (eps * (1.0 - a_prev - std * std).max(0.0).sqrt())?;
        let mut prev_sample = ((x0 * a_prev.sqrt())? + dir)?;
        if eta > 0.0 {
            let noise = noise.ok_or_else(|| {
                Error::InvalidState("DDIM with eta > 0 needs variance noise".into())
            })?;
            prev_sample = (prev_sample + (noise * std)?)?;
        }
        Ok(prev_sample)
    }

    /// One deterministic DDIM inversion step: from `t_from` to the noisier `t_to`, reusing
    /// the model output at `t_from` (`t_from < 0` means the clean end).
    pub fn inversion_step(
        &self,
        model_output: &Tensor,
        t_from: i64,
        t_to: i64,
        sample: &Tensor,
    ) -> Result<Tensor> {
        let x0 = self.x0(model_output, t_from, sample)?;
        let eps = self.eps(model_output, t_from, sample)?;
        let a_to = self.alpha(t_to);
        Ok(((x0 * a_to.sqrt())? + (eps * (1.0 - a_to).sqrt())?)?)
    }

    /// Forward diffusion: `sqrt(a_t) x0 + sqrt(1 - a_t) noise`.
    pub fn add_noise(&self, x0: &Tensor, noise: &Tensor, t: i64) -> Result<Tensor> {
        let a = self.alpha(t);
        Ok(((x0 * a.sqrt())? + (noise * (1.0 - a).sqrt())?)?)
    }
}

/// numpy/torch `linspace` (inclusive ends).
fn linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f64;
    (0..n).map(|i| start + step * i as f64).collect()
}

/// `torch.linspace(start, end, n, dtype=float32)` as torch's CPU kernel computes it (the
/// ends and the step in f32, `start + step * i` for the first half and
/// `end - step * (n - 1 - i)` for the second, each with one rounding), as f64 values.
fn linspace_f32(start: f64, end: f64, n: usize) -> Vec<f64> {
    let (s, e) = (start as f32, end as f32);
    if n == 1 {
        return vec![s as f64];
    }
    let step = ((e - s) / (n - 1) as f32) as f64;
    (0..n)
        .map(|i| {
            let v = if i < n / 2 {
                s as f64 + step * i as f64
            } else {
                e as f64 - step * (n - 1 - i) as f64
            };
            v as f32 as f64
        })
        .collect()
}

/// diffusers' "scaled_linear" betas: `linspace(sqrt(b0), sqrt(b1), n, f32) ** 2` in f32.
fn scaled_linear_f32(beta_start: f64, beta_end: f64, n: usize) -> Vec<f64> {
    linspace_f32(beta_start.sqrt(), beta_end.sqrt(), n)
        .into_iter()
        .map(|b| {
            let b = b as f32;
            (b * b) as f64
        })
        .collect()
}

/// numpy's `round` (half to even).
fn round_half_even(v: f64) -> f64 {
    let r = v.round();
    if (v - v.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - v.signum()
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn leading_timesteps_match_diffusers() {
        let s = Ddim::stable_diffusion(Prediction::Epsilon);
        // Values printed by diffusers' DDIMScheduler with SD's config.
        assert_eq!(
            s.timesteps(10).unwrap(),
            vec![901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
        );
        let t50 = s.timesteps(50).unwrap();
        assert_eq!((t50[0], t50[49], t50.len()), (981, 1, 50));
        assert_eq!(s.timesteps(1).unwrap(), vec![1]);
        assert!(s.timesteps(0).is_err() && s.timesteps(1001).is_err());
    }

    #[test]
    fn img2img_start_index() {
        // strength 0.3 of 50 steps runs 15 steps from t = 281.
        let s = Ddim::stable_diffusion(Prediction::Epsilon);
        let start = Ddim::img2img_start(50, 0.3).unwrap();
        assert_eq!(start, 35);
        assert_eq!(s.timesteps(50).unwrap()[start], 281);
        assert_eq!(Ddim::img2img_start(50, 0.15).unwrap(), 43); // int(7.5) = 7
        assert_eq!(Ddim::img2img_start(7, 0.33).unwrap(), 5); // int(2.31) = 2
        assert_eq!(Ddim::img2img_start(50, 1.0).unwrap(), 0);
        assert_eq!(Ddim::img2img_start(50, 0.0).unwrap(), 50);
        assert!(Ddim::img2img_start(50, 1.5).is_err());
        assert!(Ddim::img2img_start(50, f64::NAN).is_err());
    }

    #[test]
    fn other_spacings() {
        let mut s = Ddim::stable_diffusion(Prediction::Epsilon);
        s.spacing = Spacing::Trailing;
        assert_eq!(s.timesteps(4).unwrap(), vec![999, 749, 499, 249]);
        s.spacing = Spacing::Linspace;
        // np.linspace(0, 999, 4).round()[::-1] = 999, 666, 333, 0
        assert_eq!(s.timesteps(4).unwrap(), vec![999, 666, 333, 0]);
    }

    #[test]
    fn x0_inverts_add_noise_for_each_prediction() {
        let dev = Device::Cpu;
        let x0 = Tensor::new(&[[0.3f32, -0.7], [1.2, 0.05]], &dev).unwrap();
        let eps = Tensor::new(&[[-1.1f32, 0.4], [0.2, 0.9]], &dev).unwrap();
        for (pred, t) in [
            (Prediction::Epsilon, 281),
            (Prediction::V, 901),
            (Prediction::Sample, 1),
        ] {
            let s = Ddim::stable_diffusion(pred);
            let a = s.alpha(t);
            let xt = s.add_noise(&x0, &eps, t).unwrap();
            let out = match pred {
                Prediction::Epsilon => eps.clone(),
                Prediction::V => {
                    ((&eps * a.sqrt()).unwrap() - (&x0 * (1.0 - a).sqrt()).unwrap()).unwrap()
                }
                Prediction::Sample => x0.clone(),
            };
            let got = s.x0(&out, t, &xt).unwrap();
            let diff = (got - &x0)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "{pred:?}: {diff}");
            let got_eps = s.eps(&out, t, &xt).unwrap();
            let diff = (got_eps - &eps)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-4, "{pred:?} eps: {diff}");
        }
    }

    #[test]
    fn eta_zero_step_lands_on_the_noised_x0() {
        // With the exact eps, a DDIM step from t moves x_t to add_noise(x0, eps, t_prev).
        let dev = Device::Cpu;
        let s = Ddim::stable_diffusion(Prediction::Epsilon);
        let x0 = Tensor::new(&[0.5f32, -0.25, 0.8], &dev).unwrap();
        let eps = Tensor::new(&[0.1f32, -1.3, 0.7], &dev).unwrap();
        let xt = s.add_noise(&x0, &eps, 501).unwrap();
        let prev = s.step(&eps, 501, 10, &xt, 0.0, None).unwrap();
        let want = s.add_noise(&x0, &eps, 401).unwrap();
        let diff = (prev - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
        // Inversion goes back up.
        let up = s
            .inversion_step(&eps, 401, 501, &s.add_noise(&x0, &eps, 401).unwrap())
            .unwrap();
        let diff = (up - xt)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
    }
}
