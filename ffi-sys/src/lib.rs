//! `ttpo-sys`: the C ABI of libttpo — `include/ttpo.h` — as Rust declarations: types,
//! constants and function-pointer types. It links nothing: it is for programs that load
//! libttpo at run time (`dlopen`/libloading), like the OpenFX plug-in, which must start
//! without it. Programs that link libttpo use the header (C) or the `ttpo-ffi` crate.
//!
//! Written by hand (bindgen needs libclang, which the build machines lack) in tables that
//! also describe themselves ([`CONSTANTS`], [`FUNCTIONS`], [`CALLBACKS`], [`STRUCTS`],
//! [`OPAQUE`]); `tests/header.rs` parses the header and fails on any difference: a missing
//! or extra name, a constant's value, an argument's type, a struct field's order or type.
//! The header in turn is checked against the library's code (`ffi/tests/header.rs`).
//!
//! Usage: `let f: pfn::ttpo_engine_new = *lib.get(b"ttpo_engine_new\0")?;`.
#![no_std]
#![allow(non_camel_case_types)]
#![deny(missing_docs)]

use core::ffi::{c_char, c_void};
use core::marker::{PhantomData, PhantomPinned};

/// A C type as written in Rust, for the self-description tables: `(name, Rust type)`.
pub type Field = (&'static str, &'static str);

/// A C function or function-pointer type: name, arguments, return type (Rust spelling,
/// `"()"` for `void`).
pub struct Signature {
    /// The C name.
    pub name: &'static str,
    /// Each argument's name and Rust type.
    pub args: &'static [Field],
    /// The Rust return type.
    pub ret: &'static str,
}

macro_rules! constants {
    ($($(#[$m:meta])* $name:ident: $ty:ty = $value:expr;)*) => {
        $($(#[$m])* pub const $name: $ty = $value;)*
        /// Every constant of the header (macros and enum values) with its value.
        pub const CONSTANTS: &[(&str, u64)] = &[$((stringify!($name), $name as u64)),*];
    };
}

macro_rules! opaque {
    ($($(#[$m:meta])* $name:ident;)*) => {
        $(
            $(#[$m])*
            #[repr(C)]
            pub struct $name {
                _private: [u8; 0],
                // Neither Send, Sync nor Unpin: only pointers to it exist.
                _marker: PhantomData<(*mut u8, PhantomPinned)>,
            }
        )*
        /// The opaque handle types.
        pub const OPAQUE: &[&str] = &[$(stringify!($name)),*];
    };
}

macro_rules! structs {
    ($($(#[$m:meta])* struct $name:ident { $($(#[$fm:meta])* $field:ident: $fty:ty,)* })*) => {
        $(
            $(#[$m])*
            #[repr(C)]
            #[derive(Clone, Copy, Debug)]
            pub struct $name { $($(#[$fm])* pub $field: $fty,)* }
        )*
        /// The structs, each with its fields in order.
        pub const STRUCTS: &[(&str, &[Field])] =
            &[$((stringify!($name), &[$((stringify!($field), stringify!($fty))),*])),*];
    };
}

macro_rules! signatures {
    ($($name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {
        &[$(Signature {
            name: stringify!($name),
            args: &[$((stringify!($arg), stringify!($ty))),*],
            ret: signatures!(@ret $($ret)?),
        }),*]
    };
    (@ret) => { "()" };
    (@ret $ret:ty) => { stringify!($ret) };
}

macro_rules! callbacks {
    ($($(#[$m:meta])* $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {
        $($(#[$m])* pub type $name = Option<unsafe extern "C" fn($($arg: $ty),*) $(-> $ret)?>;)*
        /// The callback types.
        pub const CALLBACKS: &[Signature] = signatures!($($name($($arg: $ty),*) $(-> $ret)?;)*);
    };
}

macro_rules! functions {
    ($($name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {
        /// The type of a pointer to each function of libttpo, named like the function.
        pub mod pfn {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[doc = concat!("`", stringify!($name), "` (see include/ttpo.h).")]
                pub type $name = unsafe extern "C" fn($($arg: $ty),*) $(-> $ret)?;
            )*
        }
        /// Every function of libttpo.
        pub const FUNCTIONS: &[Signature] = signatures!($($name($($arg: $ty),*) $(-> $ret)?;)*);
    };
}

/// A `ttpo_status` value (`TTPO_STATUS_*`).
pub type ttpo_status = u32;
/// A `ttpo_format` value (`TTPO_FORMAT_*`).
pub type ttpo_format = u32;
/// A `ttpo_layout` value (`TTPO_LAYOUT_*`).
pub type ttpo_layout = u32;
/// A `ttpo_device` value (`TTPO_DEVICE_*`).
pub type ttpo_device = u32;
/// A `ttpo_precision` value (`TTPO_PRECISION_*`).
pub type ttpo_precision = u32;
/// A `ttpo_stage` value (`TTPO_STAGE_*`).
pub type ttpo_stage = u32;

constants! {
    /// Major version of the library.
    TTPO_VERSION_MAJOR: u32 = 0;
    /// Minor version.
    TTPO_VERSION_MINOR: u32 = 1;
    /// Patch version.
    TTPO_VERSION_PATCH: u32 = 0;
    /// The ABI level these declarations describe; compare with `ttpo_version_api()`. The
    /// shared library's soname is `libttpo.so.<TTPO_ABI_VERSION>`.
    TTPO_ABI_VERSION: u32 = 1;
    /// `ttpo_model_verify` flag: hash the weights against their LFS SHA-256.
    TTPO_MODEL_VERIFY_SHA256: u32 = 1;
    /// `ttpo_model_verify` flag: compare with the Hub's listing (network).
    TTPO_MODEL_VERIFY_ONLINE: u32 = 2;
    /// Backend bit: the CPU.
    TTPO_BACKEND_CPU: u32 = 1;
    /// Backend bit: CUDA.
    TTPO_BACKEND_CUDA: u32 = 2;
    /// Backend bit: Metal.
    TTPO_BACKEND_METAL: u32 = 4;
    /// Success.
    TTPO_STATUS_OK: ttpo_status = 0;
    /// A required pointer argument was NULL.
    TTPO_STATUS_NULL_POINTER: ttpo_status = 1;
    /// An argument is out of range.
    TTPO_STATUS_INVALID_ARGUMENT: ttpo_status = 2;
    /// The image cannot be processed.
    TTPO_STATUS_INVALID_IMAGE: ttpo_status = 3;
    /// A model file or folder is missing.
    TTPO_STATUS_MODEL_NOT_FOUND: ttpo_status = 4;
    /// A model file is corrupt or does not match its config.
    TTPO_STATUS_MODEL_INVALID: ttpo_status = 5;
    /// The model or request is not supported by this build.
    TTPO_STATUS_UNSUPPORTED: ttpo_status = 6;
    /// The call is out of order.
    TTPO_STATUS_INVALID_STATE: ttpo_status = 7;
    /// The job was cancelled.
    TTPO_STATUS_CANCELLED: ttpo_status = 8;
    /// The tensor backend failed.
    TTPO_STATUS_BACKEND: ttpo_status = 9;
    /// File input/output failed.
    TTPO_STATUS_IO: ttpo_status = 10;
    /// A quality metric failed.
    TTPO_STATUS_METRIC: ttpo_status = 11;
    /// An internal error (a Rust panic) was caught at the boundary.
    TTPO_STATUS_PANIC: ttpo_status = 12;
    /// The model server could not be reached or failed on its side.
    TTPO_STATUS_NETWORK: ttpo_status = 13;
    /// Less free memory than the model or job needs (found before any work starts).
    TTPO_STATUS_OUT_OF_MEMORY: ttpo_status = 14;
    /// 8-bit samples.
    TTPO_FORMAT_U8: ttpo_format = 0;
    /// 16-bit samples.
    TTPO_FORMAT_U16: ttpo_format = 1;
    /// 32-bit float samples.
    TTPO_FORMAT_F32: ttpo_format = 2;
    /// One channel.
    TTPO_LAYOUT_GRAY: ttpo_layout = 0;
    /// Red, green, blue.
    TTPO_LAYOUT_RGB: ttpo_layout = 1;
    /// Red, green, blue, alpha.
    TTPO_LAYOUT_RGBA: ttpo_layout = 2;
    /// The best device compiled in and present.
    TTPO_DEVICE_AUTO: ttpo_device = 0;
    /// The CPU.
    TTPO_DEVICE_CPU: ttpo_device = 1;
    /// CUDA device `device_index`.
    TTPO_DEVICE_CUDA: ttpo_device = 2;
    /// Metal device `device_index`.
    TTPO_DEVICE_METAL: ttpo_device = 3;
    /// f32 on the CPU, bf16 on GPUs.
    TTPO_PRECISION_AUTO: ttpo_precision = 0;
    /// 32-bit float.
    TTPO_PRECISION_F32: ttpo_precision = 1;
    /// 16-bit float.
    TTPO_PRECISION_F16: ttpo_precision = 2;
    /// bfloat16.
    TTPO_PRECISION_BF16: ttpo_precision = 3;
    /// Stage I: candidates.
    TTPO_STAGE_CANDIDATES: ttpo_stage = 1;
    /// Stage II: scoring.
    TTPO_STAGE_SCORING: ttpo_stage = 2;
    /// Stage III: guided refinement.
    TTPO_STAGE_REFINE: ttpo_stage = 3;
}

opaque! {
    /// Loaded models.
    ttpo_engine;
    /// A job.
    ttpo_job;
    /// Job options.
    ttpo_options;
    /// A model download into the Hugging Face cache.
    ttpo_model_download;
}

structs! {
    /// A pixel buffer owned by the caller (see the header for the rules).
    struct ttpo_image {
        /// The first (top) row.
        data: *mut c_void,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes from one row to the next (may be negative).
        stride: isize,
        /// A `ttpo_format` value.
        format: u32,
        /// A `ttpo_layout` value.
        layout: u32,
    }
}

callbacks! {
    /// Progress: stage (a `ttpo_stage`), step of total, fraction.
    ttpo_progress_fn(user_data: *mut c_void, stage: u32, step: u32, total: u32, fraction: f64);
    /// Cancel poll: non-zero stops the job.
    ttpo_cancel_fn(user_data: *mut c_void) -> i32;
    /// Human choice, called by `ttpo_job_run`.
    ttpo_choice_fn(
        user_data: *mut c_void,
        job: *const ttpo_job,
        preferred: *mut u32,
        dispreferred: *mut u32
    ) -> i32;
    /// Model download progress: file, its bytes done of total, the model's done of total.
    ttpo_model_download_progress_fn(
        user_data: *mut c_void,
        file: *const c_char,
        file_done: u64,
        file_total: u64,
        done: u64,
        total: u64
    );
}

functions! {
    ttpo_engine_new(
        model_dir: *const c_char,
        device: u32,
        device_index: u32,
        precision: u32,
        out: *mut *mut ttpo_engine
    ) -> u32;
    ttpo_engine_free(engine: *mut ttpo_engine);
    ttpo_engine_last_error(engine: *const ttpo_engine) -> *const c_char;
    ttpo_job_new(
        engine: *const ttpo_engine,
        options: *const ttpo_options,
        input: *const ttpo_image,
        out: *mut *mut ttpo_job
    ) -> u32;
    ttpo_job_free(job: *mut ttpo_job);
    ttpo_job_last_error(job: *const ttpo_job) -> *const c_char;
    ttpo_job_cancel(job: *const ttpo_job) -> u32;
    ttpo_job_set_progress_callback(
        job: *mut ttpo_job,
        callback: ttpo_progress_fn,
        user_data: *mut c_void
    ) -> u32;
    ttpo_job_set_cancel_callback(
        job: *mut ttpo_job,
        callback: ttpo_cancel_fn,
        user_data: *mut c_void
    ) -> u32;
    ttpo_job_set_choice_callback(
        job: *mut ttpo_job,
        callback: ttpo_choice_fn,
        user_data: *mut c_void
    ) -> u32;
    ttpo_job_generate_candidates(job: *mut ttpo_job) -> u32;
    ttpo_job_candidate_count(job: *const ttpo_job, count: *mut u32) -> u32;
    ttpo_job_candidate_image(job: *const ttpo_job, index: u32, out: *const ttpo_image) -> u32;
    ttpo_job_candidate_info(
        job: *const ttpo_job,
        index: u32,
        strength: *mut f64,
        seed: *mut u64,
        fused_score: *mut f64
    ) -> u32;
    ttpo_job_metric_count(job: *const ttpo_job, count: *mut u32) -> u32;
    ttpo_job_metric_name(job: *const ttpo_job, metric: u32) -> *const c_char;
    ttpo_job_candidate_metric(
        job: *const ttpo_job,
        index: u32,
        metric: u32,
        value: *mut f64
    ) -> u32;
    ttpo_job_choose(job: *mut ttpo_job, preferred: u32, dispreferred: u32) -> u32;
    ttpo_job_choose_auto(job: *mut ttpo_job) -> u32;
    ttpo_job_get_choice(job: *const ttpo_job, preferred: *mut u32, dispreferred: *mut u32) -> u32;
    ttpo_job_refine(job: *mut ttpo_job, out: *const ttpo_image) -> u32;
    ttpo_job_run(job: *mut ttpo_job, out: *const ttpo_image) -> u32;
    ttpo_job_size(job: *const ttpo_job, width: *mut u32, height: *mut u32) -> u32;
    ttpo_job_progress_overall(job: *const ttpo_job, overall: *mut f64) -> u32;
    ttpo_job_estimate(job: *mut ttpo_job, seconds: *mut f64, stage_seconds: *mut f64) -> u32;
    ttpo_job_contact_sheet_size(job: *const ttpo_job, width: *mut u32, height: *mut u32) -> u32;
    ttpo_job_contact_sheet(job: *const ttpo_job, out: *const ttpo_image) -> u32;
    ttpo_options_new() -> *mut ttpo_options;
    ttpo_options_free(options: *mut ttpo_options);
    ttpo_options_set_seed(options: *mut ttpo_options, value: u64) -> u32;
    ttpo_options_set_steps(options: *mut ttpo_options, value: u32) -> u32;
    ttpo_options_set_seeds_per_strength(options: *mut ttpo_options, value: u32) -> u32;
    ttpo_options_set_cfg_scale(options: *mut ttpo_options, value: f64) -> u32;
    ttpo_options_set_refine_steps(options: *mut ttpo_options, value: u32) -> u32;
    ttpo_options_set_alpha(options: *mut ttpo_options, value: f64) -> u32;
    ttpo_options_set_guidance(options: *mut ttpo_options, value: f64) -> u32;
    ttpo_options_set_t1(options: *mut ttpo_options, value: f64) -> u32;
    ttpo_options_set_t2(options: *mut ttpo_options, value: f64) -> u32;
    ttpo_options_set_d0(options: *mut ttpo_options, value: f64) -> u32;
    ttpo_options_set_refine_start(options: *mut ttpo_options, value: f64) -> u32;
    ttpo_options_set_eta(options: *mut ttpo_options, value: f64) -> u32;
    ttpo_options_set_flow_guidance(options: *mut ttpo_options, value: f64) -> u32;
    ttpo_options_set_max_batch(options: *mut ttpo_options, value: u32) -> u32;
    ttpo_options_set_max_pixels(options: *mut ttpo_options, value: u64) -> u32;
    ttpo_options_set_memory_budget_mib(options: *mut ttpo_options, value: u32) -> u32;
    ttpo_options_set_tile_size(options: *mut ttpo_options, unet: u32, vae: u32) -> u32;
    ttpo_options_set_unet_tile(options: *mut ttpo_options, value: u32) -> u32;
    ttpo_options_set_vae_tile(options: *mut ttpo_options, value: u32) -> u32;
    ttpo_options_set_tile_overlap(options: *mut ttpo_options, value: f64) -> u32;
    ttpo_options_set_metric_max_pixels(options: *mut ttpo_options, value: u64) -> u32;
    ttpo_options_set_fusion(options: *mut ttpo_options, value: u32) -> u32;
    ttpo_options_set_pad_mode(options: *mut ttpo_options, value: u32) -> u32;
    ttpo_options_set_strengths(
        options: *mut ttpo_options,
        strengths: *const f64,
        count: usize
    ) -> u32;
    ttpo_options_set_strengths_str(options: *mut ttpo_options, text: *const c_char) -> u32;
    ttpo_options_set_prompt(options: *mut ttpo_options, prompt: *const c_char) -> u32;
    ttpo_options_set_negative_prompt(options: *mut ttpo_options, prompt: *const c_char) -> u32;
    ttpo_options_set_metrics(options: *mut ttpo_options, names: *const c_char) -> u32;
    ttpo_options_set_brisque_model(options: *mut ttpo_options, path: *const c_char) -> u32;
    ttpo_options_set_clip_model(options: *mut ttpo_options, path: *const c_char) -> u32;
    ttpo_options_set_iqa_model_dir(options: *mut ttpo_options, path: *const c_char) -> u32;
    ttpo_options_set_restore(options: *mut ttpo_options, name: *const c_char) -> u32;
    ttpo_options_set_restore_dir(options: *mut ttpo_options, path: *const c_char) -> u32;
    ttpo_options_set_restore_noise(options: *mut ttpo_options, value: f64) -> u32;
    ttpo_options_apply_preset(options: *mut ttpo_options, name: *const c_char) -> u32;
    ttpo_options_get_steps(options: *const ttpo_options, value: *mut u32) -> u32;
    ttpo_options_get_strengths(
        options: *const ttpo_options,
        strengths: *mut f64,
        capacity: usize,
        count: *mut usize
    ) -> u32;
    ttpo_preset_name(index: u32) -> *const c_char;
    ttpo_preset_label(index: u32) -> *const c_char;
    ttpo_metric_count() -> u32;
    ttpo_metric_name(index: u32) -> *const c_char;
    ttpo_metric_description(index: u32) -> *const c_char;
    ttpo_restore_count() -> u32;
    ttpo_restore_name(index: u32) -> *const c_char;
    ttpo_restore_description(index: u32) -> *const c_char;
    ttpo_restore_scale(index: u32) -> u32;
    ttpo_model_default_repo() -> *const c_char;
    ttpo_model_resolve(
        model: *const c_char,
        revision: *const c_char,
        path_out: *mut c_char,
        capacity: usize,
        length_out: *mut usize
    ) -> u32;
    ttpo_model_download_new(
        repo: *const c_char,
        revision: *const c_char,
        out: *mut *mut ttpo_model_download
    ) -> u32;
    ttpo_model_download_free(download: *mut ttpo_model_download);
    ttpo_model_download_last_error(download: *const ttpo_model_download) -> *const c_char;
    ttpo_model_download_set_progress_callback(
        download: *mut ttpo_model_download,
        callback: ttpo_model_download_progress_fn,
        user_data: *mut c_void
    ) -> u32;
    ttpo_model_download_set_cancel_callback(
        download: *mut ttpo_model_download,
        callback: ttpo_cancel_fn,
        user_data: *mut c_void
    ) -> u32;
    ttpo_model_download_cancel(download: *const ttpo_model_download) -> u32;
    ttpo_model_verify(model: *const c_char, revision: *const c_char, flags: u32) -> u32;
    ttpo_model_download_run(
        download: *mut ttpo_model_download,
        path_out: *mut c_char,
        capacity: usize,
        length_out: *mut usize
    ) -> u32;
    ttpo_status_str(status: u32) -> *const c_char;
    ttpo_last_error() -> *const c_char;
    ttpo_version() -> *const c_char;
    ttpo_version_number() -> u32;
    ttpo_version_api() -> u32;
    ttpo_backends() -> u32;
}
