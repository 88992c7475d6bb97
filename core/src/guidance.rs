//! Stage III: reward-guided denoising.
//!
//! At each sampler step the model is called once; from its output the clean-latent
//! prediction `x0` is formed, a loss pulls `x0`'s fine texture (high-pass) toward the
//! preferred latent `z_w` and away from the dispreferred `z_l` while keeping its structure
//! (all of it early, the low-pass part later) close to the input latent `z_r`. The latent is
//! moved along the closed-form gradient, then the scheduler steps with the same output.
//! See `docs/ENGINE.md` and the method page for the formulas.

use crate::diffusion::Prompts;
use crate::error::{Error, Result};
use crate::noise::NoiseStream;
use crate::progress::Ticker;
use crate::tiling::Tiler;
use candle_core::{DType, Device, Tensor};

/// Pixel side of the image `g` is defined for (the reproduction's 512 x 512 on SD and FLUX).
pub const REFERENCE_SIDE: usize = 512;

/// Latent elements of a `REFERENCE_SIDE`² image on `backbone`: 4 x 64 x 64 = 16384 on SD,
/// 16 x 64 x 64 = 65536 on FLUX.1 and SD3 (where the reproduction set g = 1000 on FLUX's
/// packed latent of that many elements).
pub fn reference_latent_elements(backbone: &dyn crate::diffusion::Backbone) -> f64 {
    let side = REFERENCE_SIDE / backbone.vae_factor();
    (backbone.latent_channels() * side * side) as f64
}

/// Where Stage III starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RefineStart {
    /// From pure noise over the full schedule (the reproduction's default).
    Noise,
    /// From the input latent noised to this img2img strength in (0, 1].
    Strength(f64),
}

impl std::str::FromStr for RefineStart {
    type Err = Error;

    /// `noise` (any case) or a number, as the CLI's `--refine-start` takes it. The number's
    /// range is checked by [`crate::Options::validate`], not here.
    fn from_str(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("noise") {
            return Ok(RefineStart::Noise);
        }
        s.parse::<f64>().map(RefineStart::Strength).map_err(|_| {
            Error::option(
                "refine_start",
                format!("expected `noise` or a strength, got {s:?}"),
            )
        })
    }
}

// Saved as `"noise"` or the strength (the form `--refine-start` takes).
impl serde::Serialize for RefineStart {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            RefineStart::Noise => s.serialize_str("noise"),
            RefineStart::Strength(v) => s.serialize_f64(*v),
        }
    }
}

impl<'de> serde::Deserialize<'de> for RefineStart {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Saved {
            Strength(f64),
            Text(String),
        }
        match Saved::deserialize(d)? {
            Saved::Strength(v) => Ok(RefineStart::Strength(v)),
            Saved::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Stage III parameters (one group of [`crate::Options`]; their checks live there). The
/// serde names are the options' public names (see [`crate::options::OPTIONS`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RefineParams {
    /// Sampler steps.
    #[serde(rename = "refine_steps")]
    pub steps: usize,
    /// Above this timestep only the full structure loss acts (0..1000 scale).
    pub t1: f64,
    /// At or below this timestep only the preference loss acts.
    pub t2: f64,
    /// Weight of the preference loss.
    pub alpha: f64,
    /// Guidance scale `g` of the latent update.
    pub guidance: f64,
    /// Cut-off of the Gaussian frequency split.
    pub d0: f64,
    /// Start point.
    #[serde(rename = "refine_start")]
    pub start: RefineStart,
}

impl Default for RefineParams {
    fn default() -> Self {
        Self {
            steps: 50,
            t1: 700.0,
            t2: 100.0,
            alpha: 0.5,
            guidance: 1000.0,
            d0: 0.9,
            start: RefineStart::Noise,
        }
    }
}

/// Which losses act at a timestep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `t > T1`: `L = mean (x0 - z_r)^2`.
    Structure,
    /// `T2 < t <= T1`: `L = alpha L_pref + mean (LP x0 - LP z_r)^2`.
    Mixed,
    /// `t <= T2`: `L = alpha L_pref`.
    Preference,
}

/// The phase at timestep `t`.
pub fn phase(t: f64, t1: f64, t2: f64) -> Phase {
    if t > t1 {
        Phase::Structure
    } else if t > t2 {
        Phase::Mixed
    } else {
        Phase::Preference
    }
}

/// The separable Gaussian low-pass filter on a latent's two spatial axes, in matrix form:
/// `LP(x) = Ry x Rx^T - Iy x Ix^T`, the real part of `ifft2(ifftshift(G) * fft2(x))`.
#[derive(Clone, Debug)]
pub struct FreqFilter {
    ry: Tensor,
    iy: Tensor,
    rx: Tensor,
    ix: Tensor,
    ryt: Tensor,
    iyt: Tensor,
    rxt: Tensor,
    ixt: Tensor,
}

/// Real and imaginary parts of the circulant matrix `F^-1 diag(ifftshift(g)) F` for one
/// axis of length `n`, where `g = exp(-x^2 / (2 (0.707 d0)^2))` over `linspace(-0.5, 0.5, n)`.
pub fn axis_matrices(n: usize, d0: f64) -> (Vec<f64>, Vec<f64>) {
    let sigma = 0.707 * d0;
    let coords: Vec<f64> = (0..n)
        .map(|i| {
            if n == 1 {
                -0.5
            } else {
                -0.5 + i as f64 / (n - 1) as f64
            }
        })
        .collect();
    let g: Vec<f64> = coords
        .iter()
        .map(|x| (-x * x / (2.0 * sigma * sigma)).exp())
        .collect();
    let shifted: Vec<f64> = (0..n).map(|k| g[(k + n / 2) % n]).collect();
    // c[m] = (1/n) sum_k h[k] exp(2 pi i k m / n); A[a][j] = c[(a - j) mod n].
    let (mut cr, mut ci) = (vec![0.0; n], vec![0.0; n]);
    for m in 0..n {
        for (k, h) in shifted.iter().enumerate() {
            let ang = std::f64::consts::TAU * ((k * m) % n) as f64 / n as f64;
            cr[m] += h * ang.cos() / n as f64;
            ci[m] += h * ang.sin() / n as f64;
        }
    }
    let (mut re, mut im) = (vec![0.0; n * n], vec![0.0; n * n]);
    for a in 0..n {
        for j in 0..n {
            let m = (a + n - j) % n;
            re[a * n + j] = cr[m];
            im[a * n + j] = ci[m];
        }
    }
    (re, im)
}

impl FreqFilter {
    /// The filter for `h x w` latents, built in f64 and stored in `dtype` on `device`.
    pub fn new(h: usize, w: usize, d0: f64, dtype: DType, device: &Device) -> Result<Self> {
        let mat = |v: Vec<f64>, n: usize| -> Result<Tensor> {
            Ok(Tensor::from_vec(v, (n, n), device)?.to_dtype(dtype)?)
        };
        let (ry, iy) = axis_matrices(h, d0);
        let (rx, ix) = axis_matrices(w, d0);
        let (ry, iy, rx, ix) = (mat(ry, h)?, mat(iy, h)?, mat(rx, w)?, mat(ix, w)?);
        Ok(Self {
            ryt: ry.t()?.contiguous()?,
            iyt: iy.t()?.contiguous()?,
            rxt: rx.t()?.contiguous()?,
            ixt: ix.t()?.contiguous()?,
            ry,
            iy,
            rx,
            ix,
        })
    }

    fn apply(a_r: &Tensor, a_i: &Tensor, x: &Tensor, b_r: &Tensor, b_i: &Tensor) -> Result<Tensor> {
        let real = a_r.broadcast_matmul(x)?.broadcast_matmul(b_r)?;
        let imag = a_i.broadcast_matmul(x)?.broadcast_matmul(b_i)?;
        Ok((real - imag)?)
    }

    /// Low-pass of `x` (…, H, W).
    pub fn low(&self, x: &Tensor) -> Result<Tensor> {
        Self::apply(&self.ry, &self.iy, x, &self.rxt, &self.ixt)
    }
    /// High-pass `x - LP(x)`.
    pub fn high(&self, x: &Tensor) -> Result<Tensor> {
        Ok((x - self.low(x)?)?)
    }
    /// The adjoint `LP^T`.
    pub fn low_adjoint(&self, g: &Tensor) -> Result<Tensor> {
        Self::apply(&self.ryt, &self.iyt, g, &self.rx, &self.ix)
    }
    /// The adjoint `HP^T = I - LP^T`.
    pub fn high_adjoint(&self, g: &Tensor) -> Result<Tensor> {
        Ok((g - self.low_adjoint(g)?)?)
    }
}

/// The fixed latents of Stage III, with their filtered parts precomputed.
pub struct Targets {
    z_r: Tensor,
    lp_zr: Tensor,
    hp_zw: Tensor,
    hp_zl: Tensor,
    filter: FreqFilter,
}

impl Targets {
    /// `z_r` input, `z_w` preferred, `z_l` dispreferred latents (same shape).
    pub fn new(z_r: Tensor, z_w: &Tensor, z_l: &Tensor, d0: f64) -> Result<Self> {
        let (h, w) = (
            z_r.dim(candle_core::D::Minus2)?,
            z_r.dim(candle_core::D::Minus1)?,
        );
        let filter = FreqFilter::new(h, w, d0, z_r.dtype(), z_r.device())?;
        Ok(Self {
            lp_zr: filter.low(&z_r)?,
            hp_zw: filter.high(z_w)?,
            hp_zl: filter.high(z_l)?,
            z_r,
            filter,
        })
    }

    /// The loss and its gradient with respect to `x0`, for one phase.
    pub fn loss_and_grad(&self, x0: &Tensor, phase: Phase, alpha: f64) -> Result<(f64, Tensor)> {
        let n = x0.elem_count() as f64;
        let scalar =
            |t: &Tensor| -> Result<f64> { Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
        let mut loss = 0.0;
        let mut grad = x0.zeros_like()?;
        if phase != Phase::Structure {
            let hp = self.filter.high(x0)?;
            let dw = (&hp - &self.hp_zw)?;
            let dl = (&hp - &self.hp_zl)?;
            let delta = scalar(&dl.abs()?.mean_all()?)? - scalar(&dw.abs()?.mean_all()?)?;
            let sig = 1.0 / (1.0 + (-delta).exp());
            // -log sigma(delta) = softplus(-delta), computed stably.
            loss += alpha
                * (if delta > 0.0 {
                    (-delta).exp().ln_1p()
                } else {
                    -delta + delta.exp().ln_1p()
                });
            let coeff = alpha * (1.0 - sig) / n;
            let g = self.filter.high_adjoint(&(dw.sign()? - dl.sign()?)?)?;
            grad = (grad + (g * coeff)?)?;
        }
        match phase {
            Phase::Structure => {
                let d = (x0 - &self.z_r)?;
                loss += scalar(&d.sqr()?.mean_all()?)?;
                grad = (grad + (d * (2.0 / n))?)?;
            }
            Phase::Mixed => {
                let d = (self.filter.low(x0)? - &self.lp_zr)?;
                loss += scalar(&d.sqr()?.mean_all()?)?;
                grad = (grad + (self.filter.low_adjoint(&d)? * (2.0 / n))?)?;
            }
            Phase::Preference => {}
        }
        Ok((loss, grad))
    }
}

/// Runs the guided sampler from `params.start` and returns the final clean latent. The
/// model output goes through `tiler` (one network call per step for an image that fits
/// one tile), which ticks `ticker` per call; the losses act on the whole latent.
pub(crate) fn guided_denoise(
    tiler: &Tiler,
    prompts: &Prompts,
    cfg_scale: f64,
    targets: &Targets,
    params: &RefineParams,
    noise: NoiseStream,
    ticker: &mut Ticker,
) -> Result<Tensor> {
    let schedule = tiler.schedule(params.steps)?;
    let steps = schedule.len();
    let shape = targets.z_r.dims().to_vec();
    let eps0 = noise.tensor(&shape, targets.z_r.device())?;
    let (first, mut x) = match params.start {
        RefineStart::Noise => (0, eps0),
        RefineStart::Strength(s) => {
            let start = schedule.start(s)?;
            if start == steps {
                return Ok(targets.z_r.clone());
            }
            (start, schedule.add_noise(&targets.z_r, &eps0, start)?)
        }
    };
    // The losses are means over the latent's N elements, so the raw gradient per element
    // shrinks as 1/N. `g` is defined for the backbone's latent of a 512x512 image (SD's
    // 4x64x64, FLUX's and SD3's 16x64x64: the reproduction's settings, where this factor
    // is 1); rescaling by N / N_512 keeps the step per element the same at every image
    // size, so small images do not overshoot and diverge and large ones are not left
    // unguided.
    let size_factor = targets.z_r.elem_count() as f64 / reference_latent_elements(tiler.backbone());
    for i in first..steps {
        let t = schedule.timestep(i);
        let out = tiler.model_output(&x, t, prompts, cfg_scale, ticker)?;
        let x0 = schedule.x0(&out, i, &x)?;
        let ph = phase(t, params.t1, params.t2);
        let (loss, grad) = targets.loss_and_grad(&x0, ph, params.alpha)?;
        tracing::debug!(t, ?ph, loss, "stage III step");
        let step_size = params.guidance * size_factor * schedule.dx0_dx(i);
        x = (x - (grad * step_size)?)?;
        x = schedule.step(&out, i, &x, 0.0, None)?;
    }
    let finite = x
        .to_dtype(DType::F32)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?
        .is_finite();
    if !finite {
        return Err(Error::option(
            "guidance",
            "Stage III diverged (non-finite latent): lower the guidance scale g",
        ));
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustfft::{num_complex::Complex64, FftPlanner};

    #[test]
    fn refine_start_parses_noise_or_a_number() {
        assert_eq!("noise".parse::<RefineStart>().unwrap(), RefineStart::Noise);
        assert_eq!("NoIsE".parse::<RefineStart>().unwrap(), RefineStart::Noise);
        assert_eq!(
            "0.25".parse::<RefineStart>().unwrap(),
            RefineStart::Strength(0.25)
        );
        // The range is validation's business: parsing keeps the number.
        assert_eq!(
            "-3".parse::<RefineStart>().unwrap(),
            RefineStart::Strength(-3.0)
        );
        for bad in ["", " noise", "0.5x", "nois"] {
            let e = bad.parse::<RefineStart>().unwrap_err();
            assert!(matches!(e, Error::InvalidOption { .. }), "{bad:?}: {e}");
        }
    }

    fn rand_tensor(seed: u64, shape: &[usize]) -> Tensor {
        NoiseStream::new(seed, 0)
            .tensor(shape, &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
    }

    fn vec(t: &Tensor) -> Vec<f64> {
        t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
    }

    /// `Re(ifft2(ifftshift(G) * fft2(x)))` with rustfft, for one (H, W) plane.
    fn fft_lowpass(x: &[f64], h: usize, w: usize, d0: f64) -> Vec<f64> {
        let mut planner = FftPlanner::<f64>::new();
        let (fw, fh) = (planner.plan_fft_forward(w), planner.plan_fft_forward(h));
        let (iw, ih) = (planner.plan_fft_inverse(w), planner.plan_fft_inverse(h));
        let mut buf: Vec<Complex64> = x.iter().map(|&v| Complex64::new(v, 0.0)).collect();
        let transform_cols =
            |buf: &mut Vec<Complex64>, plan: &std::sync::Arc<dyn rustfft::Fft<f64>>| {
                for c in 0..w {
                    let mut col: Vec<Complex64> = (0..h).map(|r| buf[r * w + c]).collect();
                    plan.process(&mut col);
                    for r in 0..h {
                        buf[r * w + c] = col[r];
                    }
                }
            };
        for row in buf.chunks_mut(w) {
            fw.process(row);
        }
        transform_cols(&mut buf, &fh);
        let sigma = 0.707 * d0;
        let lin = |n: usize, i: usize| {
            if n == 1 {
                -0.5
            } else {
                -0.5 + i as f64 / (n - 1) as f64
            }
        };
        for u in 0..h {
            for v in 0..w {
                // ifftshift: frequency index k takes the centred value at (k + n/2) mod n.
                let (yy, xx) = (lin(h, (u + h / 2) % h), lin(w, (v + w / 2) % w));
                let g = (-(xx * xx + yy * yy) / (2.0 * sigma * sigma)).exp();
                buf[u * w + v] *= g;
            }
        }
        for row in buf.chunks_mut(w) {
            iw.process(row);
        }
        transform_cols(&mut buf, &ih);
        buf.iter().map(|c| c.re / (h * w) as f64).collect()
    }

    #[test]
    fn matrix_filter_equals_fft_filter() {
        for (h, w, d0) in [(8, 8, 0.9), (7, 12, 0.9), (16, 10, 0.3), (1, 5, 0.9)] {
            let x = rand_tensor(h as u64 * 31 + w as u64, &[1, 1, h, w]);
            let f = FreqFilter::new(h, w, d0, DType::F64, &Device::Cpu).unwrap();
            let ours = vec(&f.low(&x).unwrap());
            let reference = fft_lowpass(&vec(&x), h, w, d0);
            let err = ours
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-12, "{h}x{w} d0={d0}: {err}");
        }
    }

    #[test]
    fn adjoint_is_the_transpose() {
        // <LP x, y> == <x, LP^T y>
        let f = FreqFilter::new(6, 9, 0.9, DType::F64, &Device::Cpu).unwrap();
        let x = rand_tensor(1, &[2, 3, 6, 9]);
        let y = rand_tensor(2, &[2, 3, 6, 9]);
        let dot = |a: &Tensor, b: &Tensor| {
            (a * b)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let lhs = dot(&f.low(&x).unwrap(), &y);
        let rhs = dot(&x, &f.low_adjoint(&y).unwrap());
        assert!((lhs - rhs).abs() < 1e-10, "{lhs} vs {rhs}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let shape = [1, 4, 6, 8];
        let z_r = rand_tensor(10, &shape);
        let z_w = rand_tensor(11, &shape);
        let z_l = rand_tensor(12, &shape);
        let targets = Targets::new(z_r, &z_w, &z_l, 0.9).unwrap();
        let x0 = rand_tensor(13, &shape);
        let n = x0.elem_count();
        for ph in [Phase::Structure, Phase::Mixed, Phase::Preference] {
            let (_, grad) = targets.loss_and_grad(&x0, ph, 0.5).unwrap();
            let grad = vec(&grad);
            let base = vec(&x0);
            let loss_at = |v: &[f64]| {
                let t = Tensor::from_vec(v.to_vec(), &shape, &Device::Cpu).unwrap();
                targets.loss_and_grad(&t, ph, 0.5).unwrap().0
            };
            let h = 1e-7;
            // Several coordinates plus a random direction (directional derivative).
            for idx in [0, 17, 63, n - 1] {
                let mut p = base.clone();
                let mut m = base.clone();
                p[idx] += h;
                m[idx] -= h;
                let fd = (loss_at(&p) - loss_at(&m)) / (2.0 * h);
                assert!(
                    (fd - grad[idx]).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{ph:?}[{idx}]: fd {fd} vs {}",
                    grad[idx]
                );
            }
            let dir = vec(&rand_tensor(14, &shape));
            let step = |s: f64| {
                base.iter()
                    .zip(&dir)
                    .map(|(b, d)| b + s * d)
                    .collect::<Vec<_>>()
            };
            let fd = (loss_at(&step(h)) - loss_at(&step(-h))) / (2.0 * h);
            let analytic: f64 = grad.iter().zip(&dir).map(|(g, d)| g * d).sum();
            assert!(
                (fd - analytic).abs() < 1e-6 * (1.0 + fd.abs()),
                "{ph:?} directional: {fd} vs {analytic}"
            );
            assert!(grad.iter().any(|g| g.abs() > 1e-8), "{ph:?}: zero gradient");
        }
    }

    #[test]
    fn phases_at_the_boundaries() {
        assert_eq!(phase(701.0, 700.0, 100.0), Phase::Structure);
        assert_eq!(phase(700.0, 700.0, 100.0), Phase::Mixed);
        assert_eq!(phase(101.0, 700.0, 100.0), Phase::Mixed);
        assert_eq!(phase(100.0, 700.0, 100.0), Phase::Preference);
        assert_eq!(phase(0.0, 700.0, 100.0), Phase::Preference);
        assert_eq!(phase(999.0, 700.0, 100.0), Phase::Structure);
    }

    #[test]
    fn preference_gradient_moves_texture_toward_the_preferred() {
        let shape = [1, 4, 8, 8];
        let targets = Targets::new(
            rand_tensor(1, &shape),
            &rand_tensor(2, &shape),
            &rand_tensor(3, &shape),
            0.9,
        )
        .unwrap();
        let mut x0 = rand_tensor(4, &shape);
        let d = |x: &Tensor, z: &Tensor| {
            let hx = targets.filter.high(x).unwrap();
            (hx - z)
                .unwrap()
                .abs()
                .unwrap()
                .mean_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let before = d(&x0, &targets.hp_zw) - d(&x0, &targets.hp_zl);
        for _ in 0..50 {
            let (_, g) = targets.loss_and_grad(&x0, Phase::Preference, 0.5).unwrap();
            x0 = (x0 - (g * 200.0).unwrap()).unwrap();
        }
        let after = d(&x0, &targets.hp_zw) - d(&x0, &targets.hp_zl);
        assert!(
            after < before - 0.05,
            "d_w - d_l went from {before} to {after}"
        );
    }
}
