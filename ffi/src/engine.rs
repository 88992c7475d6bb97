//! `ttpo_engine`: loaded models, shared by any number of jobs and threads.

use crate::panic::guard;
use crate::status::{Failure, LastError};
use std::ffi::{c_char, CStr};
use std::sync::Arc;

/// Loaded models (opaque). Thread-safe: jobs on different threads may share one engine.
pub struct ttpo_engine {
    pub(crate) engine: Arc<ttpo::Engine>,
    pub(crate) last_error: LastError,
}

/// Device choice for `ttpo_engine_new`.
#[repr(u32)]
pub enum ttpo_device {
    /// CUDA if compiled in and present, else Metal if compiled in, else the CPU.
    TTPO_DEVICE_AUTO = 0,
    /// The CPU.
    TTPO_DEVICE_CPU = 1,
    /// CUDA device `device_index`.
    TTPO_DEVICE_CUDA = 2,
    /// Metal device `device_index`.
    TTPO_DEVICE_METAL = 3,
}

/// Compute precision for `ttpo_engine_new`.
#[repr(u32)]
pub enum ttpo_precision {
    /// f32 on the CPU, bf16 on GPUs.
    TTPO_PRECISION_AUTO = 0,
    /// 32-bit float.
    TTPO_PRECISION_F32 = 1,
    /// 16-bit float.
    TTPO_PRECISION_F16 = 2,
    /// bfloat16 (GPU only).
    TTPO_PRECISION_BF16 = 3,
}

/// Loads a diffusers-layout model folder: Stable Diffusion 1.x/2.x, SD3/3.5 or FLUX.1.
/// `model_dir` NULL or "" means the folder named by the environment variable
/// `TTPO_MODEL_DIR`. On success `*out` receives an engine to free with `ttpo_engine_free`;
/// on failure `*out` is untouched and `ttpo_last_error()` says why. Loading takes seconds
/// to minutes: call it off the UI thread.
///
/// # Safety
/// `model_dir` must be NULL or a NUL-terminated string; `out` a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn ttpo_engine_new(
    model_dir: *const c_char,
    device: u32,
    device_index: u32,
    precision: u32,
    out: *mut *mut ttpo_engine,
) -> u32 {
    guard(None, || {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let given = if model_dir.is_null() {
            None
        } else {
            Some(CStr::from_ptr(model_dir).to_bytes()).filter(|b| !b.is_empty())
        };
        // Paths are bytes on Unix: a folder name need not be UTF-8, given or from the
        // environment.
        let dir = match given {
            Some(bytes) => path_from_bytes(bytes)?,
            None => match std::env::var_os("TTPO_MODEL_DIR") {
                Some(v) if !v.is_empty() => std::path::PathBuf::from(v),
                Some(_) => {
                    return Err(Failure::arg(
                        "no model folder given and TTPO_MODEL_DIR is empty",
                    ))
                }
                None => {
                    return Err(Failure::arg(
                        "no model folder given and TTPO_MODEL_DIR is not set",
                    ))
                }
            },
        };
        let device = match device {
            0 => ttpo::DeviceChoice::Auto,
            1 => ttpo::DeviceChoice::Cpu,
            2 => ttpo::DeviceChoice::Cuda(device_index as usize),
            3 => ttpo::DeviceChoice::Metal(device_index as usize),
            v => return Err(Failure::arg(format!("unknown device {v}"))),
        };
        let precision = match precision {
            0 => None,
            1 => Some(ttpo::Precision::F32),
            2 => Some(ttpo::Precision::F16),
            3 => Some(ttpo::Precision::Bf16),
            v => return Err(Failure::arg(format!("unknown precision {v}"))),
        };
        crate::panic::test_hook("engine_new");
        let cfg = ttpo::EngineConfig {
            device,
            precision,
            ..Default::default()
        };
        let engine = ttpo::Engine::load(&[dir], &cfg)?;
        *out = Box::into_raw(Box::new(ttpo_engine {
            engine: Arc::new(engine),
            last_error: LastError::default(),
        }));
        Ok(())
    })
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> Result<std::path::PathBuf, Failure> {
    use std::os::unix::ffi::OsStrExt;
    Ok(std::ffi::OsStr::from_bytes(bytes).into())
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> Result<std::path::PathBuf, Failure> {
    std::str::from_utf8(bytes)
        .map(Into::into)
        .map_err(|_| Failure::arg("model_dir is not valid UTF-8"))
}

/// Frees an engine (NULL is ignored). Jobs keep the models alive until they are freed.
///
/// # Safety
/// `engine` must come from `ttpo_engine_new` and not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn ttpo_engine_free(engine: *mut ttpo_engine) {
    if !engine.is_null() {
        crate::panic::guard_value((), || drop(Box::from_raw(engine)));
    }
}

/// The latest error message of calls on this engine, from whichever thread failed last
/// ("" if none; never NULL for a valid handle, NULL for a NULL handle). The string is this
/// thread's copy: valid until this thread reads this engine's error again or frees the
/// engine; other threads' failing calls never invalidate it.
///
/// # Safety
/// `engine` must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn ttpo_engine_last_error(engine: *const ttpo_engine) -> *const c_char {
    match engine.as_ref() {
        Some(e) => e.last_error.ptr(),
        None => std::ptr::null(),
    }
}
