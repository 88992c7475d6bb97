//! A small OpenFX 1.4 host, written for testing `TTPO.ofx.bundle` the way real hosts load
//! it: dlopen `Contents/Linux-x86-64/<name>.ofx`, `OfxGetNumberOfPlugins`/`OfxGetPlugin`,
//! `setHost`, then actions. Suites: property, image effect, parameter, memory, multithread
//! (minimal, single-threaded), message v1/v2 and progress v1. The C-variadic functions
//! (parameter get/set, messages) live in `shim.c`.

#[path = "../../../plugins/ofx/src/ofx.rs"]
pub mod ofx;

pub mod image;
mod image_effect;
mod memory;
mod message;
mod multithread;
mod param;
pub mod plugin;
mod progress;
pub mod property;
mod shim;
pub mod state;

use std::ffi::{c_char, CStr};

pub use image::{depth_bytes, ImageBuf, Rows};
pub use plugin::{binary_in_bundle, is_mapped, Plugin};
pub use property::{PropSet, Val};
pub use state::{
    Clip, Effect, Message, Param, ParamSet, FETCHES, OFFER_MESSAGE_V2, OFFER_PROGRESS,
};

unsafe fn name_of(p: *const c_char) -> String {
    CStr::from_ptr(p).to_string_lossy().into_owned()
}
