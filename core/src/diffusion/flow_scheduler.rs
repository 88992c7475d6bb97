//! diffusers' `FlowMatchEulerDiscreteScheduler` (rectified flow: FLUX.1, SD3, SD3.5).
//!
//! A flow model predicts the velocity `v = ε − x0` of the straight path
//! `x_σ = (1 − σ)·x0 + σ·ε`, so one Euler step is `x ← x + (σ_next − σ)·v` and the clean
//! estimate is `x0 = x − σ·v`. The timestep the network sees is `1000·σ`.
//!
//! The schedule is reproduced bit for bit (diffusers 0.35.2, numpy 2, torch f32), which is
//! why the arithmetic below is written out in the precision diffusers uses at each point:
//! * sigmas handed in by the pipeline (FLUX passes `np.linspace(1, 1/n, n)`) are rounded to
//!   f32 first and then shifted in f32 (numpy treats Python scalars as weak);
//! * without them (SD3) the endpoints come from the 1000-entry training table (f32, already
//!   shifted when the shift is static — diffusers then shifts them a second time), are
//!   spaced by `np.linspace` in f64 and shifted in f64, and only the result is rounded to f32.
//!
//! Supported config: `shift` (static), `use_dynamic_shifting` with `mu` (exponential or
//! linear `time_shift_type`). Karras/exponential/beta sigmas, `shift_terminal`,
//! `invert_sigmas` and `stochastic_sampling` are refused with an error (no FLUX.1 or SD3/3.5
//! release uses them).

use crate::error::{Error, Result};
use candle_core::Tensor;
use serde::Deserialize;
use std::path::Path;

/// How `mu` shifts the sigmas when `use_dynamic_shifting` is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeShift {
    /// `e^mu / (e^mu + (1/σ − 1))` (FLUX.1).
    Exponential,
    /// `mu / (mu + (1/σ − 1))`.
    Linear,
}

fn d_train() -> usize {
    1000
}
fn d_shift() -> f64 {
    1.0
}
fn d_base_shift() -> f64 {
    0.5
}
fn d_max_shift() -> f64 {
    1.15
}
fn d_base_len() -> usize {
    256
}
fn d_max_len() -> usize {
    4096
}
fn d_time_shift() -> TimeShift {
    TimeShift::Exponential
}

/// `scheduler/scheduler_config.json` of a flow model (diffusers' field names and defaults).
#[derive(Clone, Debug, Deserialize)]
pub struct FlowMatchConfig {
    /// diffusers' class; when present it must be `FlowMatchEulerDiscreteScheduler` (a DDIM
    /// config would otherwise read as a flow config of defaults).
    #[serde(rename = "_class_name", default)]
    pub class_name: Option<String>,
    /// Length of the training schedule.
    #[serde(default = "d_train")]
    pub num_train_timesteps: usize,
    /// Static shift `s`: `σ' = sσ / (1 + (s − 1)σ)`.
    #[serde(default = "d_shift")]
    pub shift: f64,
    /// Resolution-dependent shift with `mu` (FLUX.1-dev).
    #[serde(default)]
    pub use_dynamic_shifting: bool,
    /// `mu` at `base_image_seq_len` tokens (see [`FlowMatch::mu`]).
    #[serde(default = "d_base_shift")]
    pub base_shift: f64,
    /// `mu` at `max_image_seq_len` tokens.
    #[serde(default = "d_max_shift")]
    pub max_shift: f64,
    /// Token count where `mu = base_shift`.
    #[serde(default = "d_base_len")]
    pub base_image_seq_len: usize,
    /// Token count where `mu = max_shift`.
    #[serde(default = "d_max_len")]
    pub max_image_seq_len: usize,
    /// The dynamic shift's formula.
    #[serde(default = "d_time_shift")]
    pub time_shift_type: TimeShift,
    /// Unsupported (must be false).
    #[serde(default)]
    pub invert_sigmas: bool,
    /// Unsupported (must be null).
    #[serde(default)]
    pub shift_terminal: Option<f64>,
    /// Unsupported (must be false).
    #[serde(default)]
    pub use_karras_sigmas: Option<bool>,
    /// Unsupported (must be false).
    #[serde(default)]
    pub use_exponential_sigmas: Option<bool>,
    /// Unsupported (must be false).
    #[serde(default)]
    pub use_beta_sigmas: Option<bool>,
    /// Unsupported (must be false).
    #[serde(default)]
    pub stochastic_sampling: bool,
}

impl Default for FlowMatchConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults")
    }
}

/// The sigmas and timesteps of one sampling run.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowSchedule {
    /// `n + 1` noise levels, from high to low, ending with 0 (torch f32, as diffusers).
    pub sigmas: Vec<f32>,
    /// `n` timesteps `1000·σ` (f32), what the network is conditioned on.
    pub timesteps: Vec<f32>,
}

impl FlowSchedule {
    /// Steps in the run.
    pub fn len(&self) -> usize {
        self.timesteps.len()
    }
    /// Whether the run has no step.
    pub fn is_empty(&self) -> bool {
        self.timesteps.is_empty()
    }
}

/// The scheduler: its config plus the 1000-entry training sigmas.
#[derive(Clone, Debug)]
pub struct FlowMatch {
    config: FlowMatchConfig,
    /// `sigmas[0]` and `sigmas[-1]` of diffusers' training table (f32).
    sigma_max: f32,
    sigma_min: f32,
}

/// Arithmetic in one float type, so that the f32 and f64 paths share one formula.
trait Real:
    Copy
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    fn of(v: f64) -> Self;
    fn to_f32(self) -> f32;
}
impl Real for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
    fn to_f32(self) -> f32 {
        self
    }
}
impl Real for f64 {
    fn of(v: f64) -> Self {
        v
    }
    fn to_f32(self) -> f32 {
        self as f32
    }
}

/// numpy's `linspace(start, stop, n)` in f64, bit for bit: `i·step + start` with
/// `step = (stop − start)/(n − 1)`, the last value set to `stop`.
pub fn np_linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let div = (n - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut y: Vec<f64> = if step == 0.0 {
        (0..n).map(|i| i as f64 / div * delta + start).collect()
    } else {
        (0..n).map(|i| i as f64 * step + start).collect()
    };
    y[n - 1] = stop;
    y
}

impl FlowMatch {
    /// A scheduler from a config; unsupported options are refused.
    pub fn new(config: FlowMatchConfig) -> std::result::Result<Self, String> {
        if let Some(class) = config
            .class_name
            .as_deref()
            .filter(|c| *c != "FlowMatchEulerDiscreteScheduler")
        {
            return Err(format!(
                "scheduler class {class}: a flow model needs FlowMatchEulerDiscreteScheduler"
            ));
        }
        let unsupported = [
            ("invert_sigmas", config.invert_sigmas),
            ("shift_terminal", config.shift_terminal.is_some()),
            ("use_karras_sigmas", config.use_karras_sigmas == Some(true)),
            (
                "use_exponential_sigmas",
                config.use_exponential_sigmas == Some(true),
            ),
            ("use_beta_sigmas", config.use_beta_sigmas == Some(true)),
            ("stochastic_sampling", config.stochastic_sampling),
        ];
        if let Some((name, _)) = unsupported.iter().find(|(_, on)| *on) {
            return Err(format!(
                "FlowMatchEulerDiscreteScheduler option {name} is not supported \
                 (FLUX.1 and SD3/SD3.5 do not use it)"
            ));
        }
        let n = config.num_train_timesteps;
        if !(2..=super::config::MAX_LENGTH).contains(&n) {
            return Err(format!("num_train_timesteps = {n} is outside 2..=2^20"));
        }
        let finite = [config.shift, config.base_shift, config.max_shift];
        if finite.iter().any(|v| !v.is_finite()) || config.shift <= 0.0 {
            return Err("shift, base_shift and max_shift must be finite, shift > 0".into());
        }
        if config.base_image_seq_len == config.max_image_seq_len {
            return Err("base_image_seq_len must differ from max_image_seq_len".into());
        }
        // The training table: timesteps 1000..1 (f32), σ = t/1000 in f32, shifted (f32)
        // when the shift is static. Only its two ends are used later.
        let table = |t: f32| -> f32 {
            let s = t / n as f32;
            if config.use_dynamic_shifting {
                s
            } else {
                static_shift::<f32>(config.shift, s)
            }
        };
        Ok(Self {
            sigma_max: table(n as f32),
            sigma_min: table(1.0),
            config,
        })
    }

    /// Reads `scheduler_config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let config: FlowMatchConfig = super::config::read_json(path)?;
        Self::new(config).map_err(|reason| Error::Unsupported {
            path: path.into(),
            reason,
        })
    }

    /// The config.
    pub fn config(&self) -> &FlowMatchConfig {
        &self.config
    }

    /// FluxPipeline's `calculate_shift`: `mu` from the packed image sequence length, on the
    /// line through (base_image_seq_len, base_shift) and (max_image_seq_len, max_shift).
    pub fn mu(&self, image_seq_len: usize) -> f64 {
        let c = &self.config;
        let m = (c.max_shift - c.base_shift)
            / (c.max_image_seq_len as f64 - c.base_image_seq_len as f64);
        let b = c.base_shift - m * c.base_image_seq_len as f64;
        image_seq_len as f64 * m + b
    }

    /// The sigmas FluxPipeline passes: `np.linspace(1.0, 1/n, n)`.
    pub fn flux_sigmas(n: usize) -> Vec<f64> {
        np_linspace(1.0, 1.0 / n as f64, n)
    }

    /// `set_timesteps(n, mu=mu)` without custom sigmas (the SD3 pipelines). `mu` is required
    /// with dynamic shifting and ignored otherwise.
    pub fn schedule(&self, n: usize, mu: Option<f64>) -> Result<FlowSchedule> {
        Self::check_steps(n)?;
        let t_max = self.sigma_max as f64 * self.config.num_train_timesteps as f64;
        let t_min = self.sigma_min as f64 * self.config.num_train_timesteps as f64;
        let sigmas: Vec<f64> = np_linspace(t_max, t_min, n)
            .into_iter()
            .map(|t| t / self.config.num_train_timesteps as f64)
            .collect();
        self.finish(&sigmas, mu)
    }

    /// `set_timesteps(sigmas=sigmas, mu=mu)`: custom sigmas, rounded to f32 first (the FLUX
    /// pipelines pass [`FlowMatch::flux_sigmas`]).
    pub fn schedule_with_sigmas(&self, sigmas: &[f64], mu: Option<f64>) -> Result<FlowSchedule> {
        Self::check_steps(sigmas.len())?;
        if sigmas
            .iter()
            .any(|s| !(s.is_finite() && *s > 0.0 && *s <= 1.0))
        {
            return Err(Error::InvalidOption {
                name: "sigmas",
                reason: "custom sigmas must lie in (0, 1]".into(),
            });
        }
        let sigmas: Vec<f32> = sigmas.iter().map(|&s| s as f32).collect();
        self.finish(&sigmas, mu)
    }

    /// FluxPipeline's schedule for `n` steps on `image_seq_len` packed tokens.
    pub fn flux_schedule(&self, n: usize, image_seq_len: usize) -> Result<FlowSchedule> {
        self.schedule_with_sigmas(&Self::flux_sigmas(n), Some(self.mu(image_seq_len)))
    }

    fn check_steps(n: usize) -> Result<()> {
        if !(1..=super::config::MAX_LENGTH).contains(&n) {
            return Err(Error::InvalidOption {
                name: "steps",
                reason: format!("{n} steps: must be at least 1"),
            });
        }
        Ok(())
    }

    /// Shifts (in `T`'s precision), rounds to f32, appends the final 0.
    fn finish<T: Real>(&self, sigmas: &[T], mu: Option<f64>) -> Result<FlowSchedule> {
        let c = &self.config;
        let shifted: Vec<f32> = if c.use_dynamic_shifting {
            let mu = mu.ok_or_else(|| Error::InvalidOption {
                name: "mu",
                reason: "`mu` is required with use_dynamic_shifting".into(),
            })?;
            if !mu.is_finite() {
                return Err(Error::InvalidOption {
                    name: "mu",
                    reason: format!("{mu} is not finite"),
                });
            }
            // `(1/σ − 1) ** 1.0` is the identity in IEEE arithmetic, so it is left out.
            let m = T::of(match c.time_shift_type {
                TimeShift::Exponential => mu.exp(),
                TimeShift::Linear => mu,
            });
            sigmas
                .iter()
                .map(|&s| (m / (m + (T::of(1.0) / s - T::of(1.0)))).to_f32())
                .collect()
        } else {
            sigmas
                .iter()
                .map(|&s| static_shift(c.shift, s).to_f32())
                .collect()
        };
        let scale = c.num_train_timesteps as f32;
        let timesteps = shifted.iter().map(|&s| s * scale).collect();
        let mut sigmas = shifted;
        sigmas.push(0.0);
        Ok(FlowSchedule { sigmas, timesteps })
    }

    /// FluxImg2ImgPipeline's start index for `strength` over `n` steps:
    /// `int(max(n − min(n·s, n), 0))` in f64. When `n·s` is not an integer this is
    /// `n − ⌈n·s⌉`, one step earlier than SD's img2img `n − ⌊n·s⌋` (28 steps at 0.6: index
    /// 11, SD: 12), so a flow model runs one more step at the same strength.
    pub fn img2img_start(n: usize, strength: f64) -> Result<usize> {
        if !(strength > 0.0 && strength <= 1.0) {
            return Err(Error::InvalidOption {
                name: "strength",
                reason: format!("{strength} is outside (0, 1]"),
            });
        }
        let n_f = n as f64;
        let init = (n_f * strength).min(n_f);
        Ok((n_f - init).max(0.0) as usize)
    }

    /// `scale_noise`: `σ·ε + (1 − σ)·x0` (f32, as diffusers).
    pub fn scale_noise(x0: &Tensor, noise: &Tensor, sigma: f32) -> Result<Tensor> {
        Ok(((noise * sigma as f64)? + (x0 * (1f32 - sigma) as f64)?)?)
    }

    /// One Euler step from `sigmas[i]` to `sigmas[i + 1]`: `x + (σ_{i+1} − σ_i)·v`.
    pub fn step(schedule: &FlowSchedule, i: usize, v: &Tensor, x: &Tensor) -> Result<Tensor> {
        let (s, s_next) = match (schedule.sigmas.get(i), schedule.sigmas.get(i + 1)) {
            (Some(&s), Some(&n)) => (s, n),
            _ => {
                return Err(Error::InvalidOption {
                    name: "step",
                    reason: format!("index {i} is past the {} steps", schedule.len()),
                })
            }
        };
        Ok((x + (v * (s_next - s) as f64)?)?)
    }

    /// The clean estimate `x0 = x − σ·v` (TTPO's Stage III on flow models).
    pub fn x0(v: &Tensor, x: &Tensor, sigma: f32) -> Result<Tensor> {
        Ok((x - (v * sigma as f64)?)?)
    }
}

/// `s·σ / (1 + (s − 1)·σ)` in `T` (the Python scalars rounded to `T` as numpy/torch do).
fn static_shift<T: Real>(shift: f64, s: T) -> T {
    T::of(shift) * s / (T::of(1.0) + T::of(shift - 1.0) * s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(j: &str) -> FlowMatch {
        FlowMatch::new(serde_json::from_str(j).unwrap()).unwrap()
    }

    #[test]
    fn linspace_matches_numpy_construction() {
        assert_eq!(np_linspace(1.0, 0.25, 4), vec![1.0, 0.75, 0.5, 0.25]);
        assert_eq!(np_linspace(3.0, 3.0, 3), vec![3.0, 3.0, 3.0]);
        assert_eq!(np_linspace(2.0, 9.0, 1), vec![2.0]);
    }

    #[test]
    fn unshifted_flux_sigmas_are_the_linspace() {
        let s = cfg(r#"{"shift": 1.0}"#).flux_schedule(4, 4096).unwrap();
        assert_eq!(s.sigmas, vec![1.0, 0.75, 0.5, 0.25, 0.0]);
        assert_eq!(s.timesteps, vec![1000.0, 750.0, 500.0, 250.0]);
    }

    #[test]
    fn shift_moves_sigmas_up_and_keeps_the_ends() {
        let plain = cfg(r#"{"shift": 1.0}"#).schedule(10, None).unwrap();
        let shifted = cfg(r#"{"shift": 3.0}"#).schedule(10, None).unwrap();
        assert_eq!(shifted.sigmas[0], 1.0);
        assert_eq!(*shifted.sigmas.last().unwrap(), 0.0);
        for i in 1..10 {
            assert!(shifted.sigmas[i] > plain.sigmas[i], "step {i}");
        }
        // mu = ln 3 with the exponential shift is the static shift 3 (up to rounding).
        let dynamic = cfg(r#"{"use_dynamic_shifting": true}"#);
        let a = dynamic
            .schedule_with_sigmas(&FlowMatch::flux_sigmas(8), Some(3f64.ln()))
            .unwrap();
        let b = cfg(r#"{"shift": 3.0}"#)
            .schedule_with_sigmas(&FlowMatch::flux_sigmas(8), None)
            .unwrap();
        for (x, y) in a.sigmas.iter().zip(&b.sigmas) {
            assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        }
        assert!(dynamic.schedule(8, None).is_err(), "mu is required");
    }

    #[test]
    fn mu_is_on_the_line() {
        let f = cfg(r#"{"use_dynamic_shifting": true}"#);
        assert!((f.mu(256) - 0.5).abs() < 1e-12);
        assert!((f.mu(4096) - 1.15).abs() < 1e-12);
    }

    #[test]
    fn img2img_start_follows_diffusers_float_arithmetic() {
        assert_eq!(FlowMatch::img2img_start(10, 0.3).unwrap(), 7);
        assert_eq!(FlowMatch::img2img_start(10, 0.5).unwrap(), 5);
        assert_eq!(FlowMatch::img2img_start(28, 0.6).unwrap(), 11);
        assert_eq!(FlowMatch::img2img_start(4, 1.0).unwrap(), 0);
        assert!(FlowMatch::img2img_start(4, 0.0).is_err());
    }

    #[test]
    fn unsupported_options_are_refused() {
        for j in [
            r#"{"invert_sigmas": true}"#,
            r#"{"shift_terminal": 0.1}"#,
            r#"{"use_karras_sigmas": true}"#,
            r#"{"stochastic_sampling": true}"#,
            r#"{"_class_name": "DDIMScheduler"}"#,
        ] {
            let e = FlowMatch::new(serde_json::from_str(j).unwrap()).unwrap_err();
            assert!(
                e.contains("not supported") || e.contains("DDIMScheduler"),
                "{j}: {e}"
            );
        }
    }

    #[test]
    fn euler_step_and_x0_follow_the_straight_path() {
        let dev = candle_core::Device::Cpu;
        let x0 = Tensor::new(&[0.5f32, -1.0], &dev).unwrap();
        let eps = Tensor::new(&[1.0f32, 2.0], &dev).unwrap();
        let s = cfg(r#"{"shift": 1.0}"#).flux_schedule(4, 256).unwrap();
        let x = FlowMatch::scale_noise(&x0, &eps, s.sigmas[0]).unwrap();
        let v = (&eps - &x0).unwrap();
        let back = FlowMatch::x0(&v, &x, s.sigmas[0]).unwrap();
        assert_eq!(back.to_vec1::<f32>().unwrap(), vec![0.5, -1.0]);
        let x1 = FlowMatch::step(&s, 0, &v, &x).unwrap();
        let want = FlowMatch::scale_noise(&x0, &eps, s.sigmas[1]).unwrap();
        assert_eq!(x1.to_vec1::<f32>().unwrap(), want.to_vec1::<f32>().unwrap());
        assert!(FlowMatch::step(&s, 4, &v, &x).is_err());
    }
}
