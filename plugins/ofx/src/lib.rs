//! TTPO as an OpenFX image-effect plug-in (`TTPO.ofx.bundle`).
//!
//! Describe actions never touch the engine: libttpo is loaded with libloading at the first
//! render, from the bundle (`Contents/Linux-x86-64/libttpo.so.<ABI level>`) or
//! `$TTPO_LIBRARY`. One engine per process is shared by all instances; results are cached
//! by (input hash, parameters).
//! Every entry point runs behind `catch_unwind`: a panic never unwinds into the host.
//!
//! Modules: [`suites`] (the host and its suites), [`describe`] (plug-in, clips),
//! [`params`] (parameters ↔ core's option names), [`model`] (which model, never
//! downloaded by a render), [`render`] (render, identity, regions of interest), [`image`]
//! (a fetched clip image), [`engine`] (libttpo, the engine and the result cache),
//! [`pixels`] (pixel conversions), [`ofx`] (the OpenFX binding). This file holds
//! the entry points and the action dispatch.

mod describe;
mod engine;
mod image;
mod model;
mod ofx;
mod params;
mod pixels;
mod render;
mod suites;

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use ofx::*;

pub const PLUGIN_ID: &CStr = c"org.ttpo.TTPO";

const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

struct PluginCell(OfxPlugin);
unsafe impl Sync for PluginCell {}

static PLUGIN: PluginCell = PluginCell(OfxPlugin {
    plugin_api: API_IMAGE_EFFECT.as_ptr(),
    api_version: 1,
    plugin_identifier: PLUGIN_ID.as_ptr(),
    plugin_version_major: parse_u32(env!("CARGO_PKG_VERSION_MAJOR")),
    plugin_version_minor: parse_u32(env!("CARGO_PKG_VERSION_MINOR")),
    set_host: Some(suites::set_host),
    main_entry: Some(main_entry),
});

/// OpenFX entry point: the number of plug-ins in this binary.
#[no_mangle]
pub extern "C" fn OfxGetNumberOfPlugins() -> c_int {
    1
}

/// OpenFX entry point: plug-in `nth` (NULL when out of range).
#[no_mangle]
pub extern "C" fn OfxGetPlugin(nth: c_int) -> *mut OfxPlugin {
    if nth == 0 {
        &PLUGIN.0 as *const OfxPlugin as *mut OfxPlugin
    } else {
        std::ptr::null_mut()
    }
}

unsafe fn dispatch(action: &str, handle: Handle, in_args: Handle, out_args: Handle) -> OfxStatus {
    if action == ACTION_LOAD {
        return suites::load();
    }
    let Some(s) = suites::suites() else {
        return STAT_FAILED;
    };
    match action {
        ACTION_UNLOAD | ACTION_PURGE_CACHES => {
            engine::purge(engine::loaded());
            STAT_OK
        }
        ACTION_DESCRIBE => describe::describe(&s, handle),
        ACTION_DESCRIBE_IN_CONTEXT => describe::describe_in_context(&s, handle),
        // An instance keeps no state of its own (see render.rs).
        ACTION_CREATE_INSTANCE | ACTION_DESTROY_INSTANCE => STAT_OK,
        ACTION_RENDER => render::render(&s, handle, in_args),
        ACTION_IS_IDENTITY => render::is_identity(&s, handle, in_args, out_args),
        ACTION_GET_ROI => render::regions_of_interest(&s, handle, in_args, out_args),
        ACTION_GET_ROD => render::region_of_definition(&s, handle, in_args, out_args),
        _ => STAT_REPLY_DEFAULT,
    }
}

unsafe extern "C" fn main_entry(
    action: *const c_char,
    handle: *const c_void,
    in_args: Handle,
    out_args: Handle,
) -> OfxStatus {
    if action.is_null() {
        return STAT_ERR_BAD_HANDLE;
    }
    catch_unwind(AssertUnwindSafe(|| {
        let a = CStr::from_ptr(action).to_str().unwrap_or("");
        dispatch(a, handle as Handle, in_args, out_args)
    }))
    .unwrap_or(STAT_ERR_FATAL)
}
