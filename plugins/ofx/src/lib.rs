//! TTPO as an OpenFX image-effect plug-in (`TTPO.ofx.bundle`).
//!
//! Describe actions never touch the engine: libttpo is loaded with libloading at the first
//! render, from the bundle (`Contents/Linux-x86-64/libttpo.so.<ABI level>`) or
//! `$TTPO_LIBRARY`. One engine per process is shared by all instances; results are cached
//! by (input hash, parameters).
//! Every entry point runs behind `catch_unwind`: a panic never unwinds into the host.

mod engine;
mod ofx;
mod pixels;

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::hash::Hasher;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};

use ofx::*;
use pixels::Depth;

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
    set_host: Some(set_host),
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

static HOST: AtomicPtr<OfxHost> = AtomicPtr::new(std::ptr::null_mut());

unsafe extern "C" fn set_host(host: *mut OfxHost) {
    let _ = catch_unwind(|| HOST.store(host, Ordering::SeqCst));
}

#[derive(Clone, Copy)]
struct Suites {
    prop: &'static PropertySuiteV1,
    effect: &'static ImageEffectSuiteV1,
    param: &'static ParameterSuiteV1,
    msg1: Option<&'static MessageSuiteV1>,
    msg2: Option<&'static MessageSuiteV2>,
    progress: Option<&'static ProgressSuiteV1>,
}
unsafe impl Send for Suites {}

static SUITES: Mutex<Option<Suites>> = Mutex::new(None);

unsafe fn fetch<T>(name: &CStr, version: c_int) -> Option<&'static T> {
    let host = HOST.load(Ordering::SeqCst);
    if host.is_null() {
        return None;
    }
    let f = (*host).fetch_suite?;
    let p = f((*host).host, name.as_ptr(), version) as *const T;
    p.as_ref()
}

fn suites() -> Option<Suites> {
    *SUITES.lock().unwrap_or_else(|e| e.into_inner())
}

unsafe fn load() -> OfxStatus {
    let (Some(prop), Some(effect), Some(param)) = (
        fetch::<PropertySuiteV1>(SUITE_PROPERTY, 1),
        fetch::<ImageEffectSuiteV1>(SUITE_IMAGE_EFFECT, 1),
        fetch::<ParameterSuiteV1>(SUITE_PARAMETER, 1),
    ) else {
        return STAT_ERR_MISSING_HOST_FEATURE;
    };
    let s = Suites {
        prop,
        effect,
        param,
        msg2: fetch(SUITE_MESSAGE, 2),
        msg1: fetch(SUITE_MESSAGE, 1),
        progress: fetch(SUITE_PROGRESS, 1),
    };
    *SUITES.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
    STAT_OK
}

/// A property set with typed accessors.
struct Props {
    s: &'static PropertySuiteV1,
    h: Handle,
}

fn c(name: &str) -> CString {
    CString::new(name).unwrap_or_default()
}

impl Props {
    fn set_str(&self, name: &str, i: c_int, v: &str) {
        unsafe { (self.s.prop_set_string)(self.h, c(name).as_ptr(), i, c(v).as_ptr()) };
    }
    fn set_strs(&self, name: &str, v: &[&str]) {
        for (i, x) in v.iter().enumerate() {
            self.set_str(name, i as c_int, x);
        }
    }
    fn set_int(&self, name: &str, i: c_int, v: c_int) {
        unsafe { (self.s.prop_set_int)(self.h, c(name).as_ptr(), i, v) };
    }
    fn set_dbl(&self, name: &str, i: c_int, v: f64) {
        unsafe { (self.s.prop_set_double)(self.h, c(name).as_ptr(), i, v) };
    }
    fn get_int(&self, name: &str, i: c_int) -> Option<c_int> {
        let mut v = 0;
        (unsafe { (self.s.prop_get_int)(self.h, c(name).as_ptr(), i, &mut v) } == STAT_OK)
            .then_some(v)
    }
    fn get_dbl(&self, name: &str, i: c_int) -> Option<f64> {
        let mut v = 0.0;
        (unsafe { (self.s.prop_get_double)(self.h, c(name).as_ptr(), i, &mut v) } == STAT_OK)
            .then_some(v)
    }
    fn get_str(&self, name: &str, i: c_int) -> Option<String> {
        let mut v: *mut c_char = std::ptr::null_mut();
        let st = unsafe { (self.s.prop_get_string)(self.h, c(name).as_ptr(), i, &mut v) };
        (st == STAT_OK && !v.is_null())
            .then(|| unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
    }
    fn get_ptr(&self, name: &str, i: c_int) -> Option<*mut c_void> {
        let mut v = std::ptr::null_mut();
        (unsafe { (self.s.prop_get_pointer)(self.h, c(name).as_ptr(), i, &mut v) } == STAT_OK)
            .then_some(v)
    }
}

// Parameter names (also what hosts such as melt use as property names).
const P_MODEL: &str = "modelDir";
const P_STRENGTHS: &str = "strengths";
const P_SEED: &str = "seed";
const P_STEPS: &str = "steps";
const P_METRICS: &str = "metrics";
const P_SELECTION: &str = "selection";
const P_PREFERRED: &str = "preferred";
const P_DISPREFERRED: &str = "dispreferred";
const P_VIEW: &str = "view";
const P_CANDIDATE: &str = "candidate";
const P_MIX: &str = "mix";

unsafe fn describe(s: &Suites, effect: Handle) -> OfxStatus {
    let mut h = std::ptr::null_mut();
    if (s.effect.get_property_set)(effect, &mut h) != STAT_OK {
        return STAT_ERR_BAD_HANDLE;
    }
    let p = Props { s: s.prop, h };
    p.set_str("OfxPropLabel", 0, "TTPO");
    p.set_str("OfxPropShortLabel", 0, "TTPO");
    p.set_str("OfxPropLongLabel", 0, "TTPO image restoration");
    p.set_str("OfxImageEffectPluginPropGrouping", 0, "TTPO");
    p.set_str(
        "OfxPropPluginDescription",
        0,
        "Test-time preference optimization for image restoration (libttpo).",
    );
    p.set_strs(
        "OfxImageEffectPropSupportedContexts",
        &[CONTEXT_FILTER, CONTEXT_GENERAL],
    );
    p.set_strs(
        "OfxImageEffectPropSupportedPixelDepths",
        &[DEPTH_BYTE, DEPTH_SHORT, DEPTH_FLOAT],
    );
    p.set_int("OfxImageEffectPluginPropSingleInstance", 0, 0);
    // One render per instance at a time; engine work is serialized by a global lock.
    p.set_str(
        "OfxImageEffectPluginRenderThreadSafety",
        0,
        "OfxImageEffectRenderInstanceSafe",
    );
    p.set_int("OfxImageEffectPluginPropHostFrameThreading", 0, 0);
    p.set_int("OfxImageEffectPropSupportsMultiResolution", 0, 1);
    p.set_int("OfxImageEffectPropSupportsTiles", 0, 0);
    p.set_int("OfxImageEffectPropTemporalClipAccess", 0, 0);
    p.set_int("OfxImageEffectPropSupportsMultipleClipDepths", 0, 0);
    p.set_int("OfxImageEffectPluginPropFieldRenderTwiceAlways", 0, 0);
    p.set_strs("OfxPropIcon", &["", "org.ttpo.TTPO.png"]);
    STAT_OK
}

unsafe fn define_param(
    s: &Suites,
    ps: Handle,
    ty: &CStr,
    name: &str,
    label: &str,
    hint: &str,
) -> Props {
    let mut h = std::ptr::null_mut();
    (s.param.param_define)(ps, ty.as_ptr(), c(name).as_ptr(), &mut h);
    let p = Props { s: s.prop, h };
    p.set_str("OfxPropLabel", 0, label);
    p.set_str("OfxParamPropHint", 0, hint);
    p
}

unsafe fn describe_in_context(s: &Suites, effect: Handle) -> OfxStatus {
    for name in [CLIP_SOURCE, CLIP_OUTPUT] {
        let mut h = std::ptr::null_mut();
        if (s.effect.clip_define)(effect, name.as_ptr(), &mut h) != STAT_OK {
            return STAT_ERR_BAD_HANDLE;
        }
        let p = Props { s: s.prop, h };
        p.set_strs(
            "OfxImageEffectPropSupportedComponents",
            &[COMPONENT_RGBA, COMPONENT_RGB],
        );
        p.set_int("OfxImageEffectPropSupportsTiles", 0, 0);
        p.set_int("OfxImageClipPropOptional", 0, 0);
    }
    let mut ps = std::ptr::null_mut();
    if (s.effect.get_param_set)(effect, &mut ps) != STAT_OK {
        return STAT_ERR_BAD_HANDLE;
    }
    let p = define_param(
        s,
        ps,
        PARAM_STRING,
        P_MODEL,
        "Model folder",
        "Stable Diffusion model folder (diffusers layout); empty: $TTPO_MODEL_DIR",
    );
    p.set_str("OfxParamPropDefault", 0, "");
    p.set_str("OfxParamPropStringMode", 0, "OfxParamStringIsDirectoryPath");
    p.set_int("OfxParamPropAnimates", 0, 0);
    let p = define_param(
        s,
        ps,
        PARAM_STRING,
        P_STRENGTHS,
        "Strengths",
        "img2img strengths of the candidates, comma-separated, each in [0, 1]",
    );
    p.set_str("OfxParamPropDefault", 0, "0.3,0.6");
    p.set_int("OfxParamPropAnimates", 0, 0);
    let p = define_param(s, ps, PARAM_STRING, P_METRICS, "Metrics", "Quality metrics, comma-separated (niqe,piqe,brisque,sharpness); empty: the engine's default");
    p.set_str("OfxParamPropDefault", 0, "");
    p.set_int("OfxParamPropAnimates", 0, 0);
    for (name, label, hint, def, min, max) in [
        (
            P_SEED,
            "Seed",
            "All randomness derives from it",
            0,
            0,
            i32::MAX,
        ),
        (
            P_STEPS,
            "Steps",
            "Sampler steps (a quarter of them in draft renders)",
            20,
            1,
            1000,
        ),
        (
            P_PREFERRED,
            "Preferred",
            "Manual selection: index of the preferred candidate (0 = the input)",
            1,
            0,
            64,
        ),
        (
            P_DISPREFERRED,
            "Dispreferred",
            "Manual selection: index of the dispreferred candidate",
            0,
            0,
            64,
        ),
        (
            P_CANDIDATE,
            "Candidate",
            "View 'Candidate': the index shown",
            0,
            0,
            64,
        ),
    ] {
        let p = define_param(s, ps, PARAM_INTEGER, name, label, hint);
        p.set_int("OfxParamPropDefault", 0, def);
        p.set_int("OfxParamPropMin", 0, min);
        p.set_int("OfxParamPropMax", 0, max);
        p.set_int("OfxParamPropDisplayMin", 0, min);
        p.set_int("OfxParamPropDisplayMax", 0, max.min(100));
        p.set_int("OfxParamPropAnimates", 0, 0);
    }
    let p = define_param(
        s,
        ps,
        PARAM_CHOICE,
        P_SELECTION,
        "Selection",
        "Automatic: the metrics choose; Manual: Preferred/Dispreferred",
    );
    p.set_strs("OfxParamPropChoiceOption", &["Automatic", "Manual"]);
    p.set_int("OfxParamPropDefault", 0, 0);
    p.set_int("OfxParamPropAnimates", 0, 0);
    let p = define_param(
        s,
        ps,
        PARAM_CHOICE,
        P_VIEW,
        "View",
        "Refined result, contact sheet of the candidates, or one candidate",
    );
    p.set_strs(
        "OfxParamPropChoiceOption",
        &["Refined", "Contact sheet", "Candidate"],
    );
    p.set_int("OfxParamPropDefault", 0, 0);
    p.set_int("OfxParamPropAnimates", 0, 0);
    let p = define_param(
        s,
        ps,
        PARAM_DOUBLE,
        P_MIX,
        "Mix",
        "Blend with the input: 0 = input, 1 = result",
    );
    p.set_dbl("OfxParamPropDefault", 0, 1.0);
    p.set_dbl("OfxParamPropMin", 0, 0.0);
    p.set_dbl("OfxParamPropMax", 0, 1.0);
    p.set_dbl("OfxParamPropDisplayMin", 0, 0.0);
    p.set_dbl("OfxParamPropDisplayMax", 0, 1.0);
    STAT_OK
}

#[derive(Clone, Debug)]
struct Params {
    model_dir: String,
    strengths: String,
    metrics: String,
    seed: i32,
    steps: i32,
    manual: bool,
    preferred: i32,
    dispreferred: i32,
    view: i32,
    candidate: i32,
    mix: f64,
}

unsafe fn param_handle(s: &Suites, effect: Handle, name: &str) -> Result<Handle, String> {
    let mut ps = std::ptr::null_mut();
    (s.effect.get_param_set)(effect, &mut ps);
    let mut h = std::ptr::null_mut();
    if (s.param.param_get_handle)(ps, c(name).as_ptr(), &mut h, std::ptr::null_mut()) != STAT_OK
        || h.is_null()
    {
        return Err(format!("host has no parameter {name}"));
    }
    Ok(h)
}

unsafe fn get_i(s: &Suites, e: Handle, name: &str, t: f64) -> Result<i32, String> {
    let h = param_handle(s, e, name)?;
    let mut v: c_int = 0;
    if (s.param.param_get_value_at_time)(h, t, &mut v as *mut c_int) != STAT_OK {
        return Err(format!("cannot read parameter {name}"));
    }
    Ok(v)
}

unsafe fn get_d(s: &Suites, e: Handle, name: &str, t: f64) -> Result<f64, String> {
    let h = param_handle(s, e, name)?;
    let mut v: f64 = 0.0;
    if (s.param.param_get_value_at_time)(h, t, &mut v as *mut f64) != STAT_OK {
        return Err(format!("cannot read parameter {name}"));
    }
    Ok(v)
}

unsafe fn get_s(s: &Suites, e: Handle, name: &str, t: f64) -> Result<String, String> {
    let h = param_handle(s, e, name)?;
    let mut v: *mut c_char = std::ptr::null_mut();
    if (s.param.param_get_value_at_time)(h, t, &mut v as *mut *mut c_char) != STAT_OK {
        return Err(format!("cannot read parameter {name}"));
    }
    Ok(if v.is_null() {
        String::new()
    } else {
        CStr::from_ptr(v).to_string_lossy().into_owned()
    })
}

unsafe fn read_params(s: &Suites, e: Handle, t: f64) -> Result<Params, String> {
    Ok(Params {
        model_dir: get_s(s, e, P_MODEL, t)?,
        strengths: get_s(s, e, P_STRENGTHS, t)?,
        metrics: get_s(s, e, P_METRICS, t)?,
        seed: get_i(s, e, P_SEED, t)?,
        steps: get_i(s, e, P_STEPS, t)?,
        manual: get_i(s, e, P_SELECTION, t)? == 1,
        preferred: get_i(s, e, P_PREFERRED, t)?,
        dispreferred: get_i(s, e, P_DISPREFERRED, t)?,
        view: get_i(s, e, P_VIEW, t)?,
        candidate: get_i(s, e, P_CANDIDATE, t)?,
        mix: get_d(s, e, P_MIX, t)?,
    })
}

/// A fetched clip image, released on drop.
struct Image {
    s: Suites,
    handle: Handle,
    data: *mut u8,
    bounds: [i32; 4],
    row_bytes: isize,
    depth: Depth,
    comps: usize,
}

impl Drop for Image {
    fn drop(&mut self) {
        unsafe { (self.s.effect.clip_release_image)(self.handle) };
    }
}

impl Image {
    unsafe fn fetch(s: &Suites, effect: Handle, clip: &CStr, t: f64) -> Result<Image, String> {
        let mut ch = std::ptr::null_mut();
        if (s.effect.clip_get_handle)(effect, clip.as_ptr(), &mut ch, std::ptr::null_mut())
            != STAT_OK
        {
            return Err(format!("no clip {clip:?}"));
        }
        let mut h = std::ptr::null_mut();
        if (s.effect.clip_get_image)(ch, t, std::ptr::null(), &mut h) != STAT_OK || h.is_null() {
            return Err(format!("host gave no image for clip {clip:?}"));
        }
        let p = Props { s: s.prop, h };
        let mut img = Image {
            s: *s,
            handle: h,
            data: p
                .get_ptr("OfxImagePropData", 0)
                .unwrap_or(std::ptr::null_mut()) as *mut u8,
            bounds: [0; 4],
            row_bytes: p.get_int("OfxImagePropRowBytes", 0).unwrap_or(0) as isize,
            depth: Depth::U8,
            comps: 4,
        };
        for i in 0..4 {
            img.bounds[i] = p.get_int("OfxImagePropBounds", i as c_int).unwrap_or(0);
        }
        let depth = p
            .get_str("OfxImageEffectPropPixelDepth", 0)
            .unwrap_or_default();
        img.depth =
            Depth::parse(&depth).ok_or_else(|| format!("unsupported pixel depth {depth:?}"))?;
        let comps = p
            .get_str("OfxImageEffectPropComponents", 0)
            .unwrap_or_default();
        img.comps = match comps.as_str() {
            COMPONENT_RGBA => 4,
            COMPONENT_RGB => 3,
            _ => return Err(format!("unsupported components {comps:?}")),
        };
        let (w, hh) = (img.width(), img.height());
        if img.data.is_null() || w == 0 || hh == 0 {
            return Err(format!("clip {clip:?}: empty image"));
        }
        if img.row_bytes.unsigned_abs() < w * img.px() {
            return Err(format!(
                "clip {clip:?}: row bytes {} too small",
                img.row_bytes
            ));
        }
        Ok(img)
    }
    fn width(&self) -> usize {
        (self.bounds[2] - self.bounds[0]).max(0) as usize
    }
    fn height(&self) -> usize {
        (self.bounds[3] - self.bounds[1]).max(0) as usize
    }
    fn px(&self) -> usize {
        self.depth.bytes() * self.comps
    }
    /// Address of pixel (x, y) in OFX coordinates (y up; `data` is at (x1, y1)).
    fn at(&self, x: i32, y: i32) -> *mut u8 {
        let off = (y - self.bounds[1]) as isize * self.row_bytes
            + (x - self.bounds[0]) as isize * self.px() as isize;
        self.data.wrapping_offset(off)
    }
    /// A ttpo_image of the whole image, top row first (stride = -rowBytes).
    fn ttpo(&self) -> engine::TtpoImage {
        engine::TtpoImage {
            data: self.at(self.bounds[0], self.bounds[3] - 1) as *mut c_void,
            width: self.width() as u32,
            height: self.height() as u32,
            stride: -self.row_bytes,
            format: self.depth.ttpo_format(),
            layout: if self.comps == 4 {
                engine::LAYOUT_RGBA
            } else {
                engine::LAYOUT_RGB
            },
        }
    }
    fn content_hash(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write_usize(self.width());
        h.write_usize(self.height());
        h.write_usize(self.px());
        h.write_u8(self.depth as u8);
        let row = self.width() * self.px();
        for y in self.bounds[1]..self.bounds[3] {
            h.write(unsafe { std::slice::from_raw_parts(self.at(self.bounds[0], y), row) });
        }
        h.finish()
    }
}

struct HostHooks {
    s: Suites,
    effect: Handle,
    started: bool,
    user_cancel: bool,
}

impl engine::Hooks for HostHooks {
    fn cancelled(&mut self) -> bool {
        self.user_cancel || unsafe { (self.s.effect.abort)(self.effect) } != 0
    }
    fn progress(&mut self, f: f64) {
        if let Some(p) = self.s.progress {
            unsafe {
                if !self.started {
                    self.started = (p.progress_start)(self.effect, c"TTPO".as_ptr()) == STAT_OK;
                }
                if self.started && (p.progress_update)(self.effect, f) == STAT_REPLY_NO {
                    self.user_cancel = true;
                }
            }
        }
    }
}

impl Drop for HostHooks {
    fn drop(&mut self) {
        if let (true, Some(p)) = (self.started, self.s.progress) {
            unsafe { (p.progress_end)(self.effect) };
        }
    }
}

unsafe fn post_error(s: &Suites, effect: Handle, msg: &str) {
    let m = c(msg);
    if let Some(m2) = s.msg2 {
        (m2.set_persistent_message)(
            effect,
            MESSAGE_ERROR.as_ptr(),
            PLUGIN_ID.as_ptr(),
            c"%s".as_ptr(),
            m.as_ptr(),
        );
    } else if let Some(m1) = s.msg1 {
        (m1.message)(
            effect,
            MESSAGE_ERROR.as_ptr(),
            PLUGIN_ID.as_ptr(),
            c"%s".as_ptr(),
            m.as_ptr(),
        );
    }
}

enum Failure {
    Error(String),
    Cancelled,
}

unsafe fn render(s: &Suites, effect: Handle, in_args: Handle) -> OfxStatus {
    match render_inner(s, effect, in_args) {
        Ok(()) => {
            if let Some(m2) = s.msg2 {
                (m2.clear_persistent_message)(effect);
            }
            STAT_OK
        }
        Err(Failure::Cancelled) => STAT_FAILED,
        Err(Failure::Error(m)) => {
            post_error(s, effect, &m);
            STAT_FAILED
        }
    }
}

unsafe fn render_inner(s: &Suites, effect: Handle, in_args: Handle) -> Result<(), Failure> {
    let ia = Props {
        s: s.prop,
        h: in_args,
    };
    let t = ia.get_dbl("OfxPropTime", 0).unwrap_or(0.0);
    let scale = ia
        .get_dbl("OfxImageEffectPropRenderScale", 0)
        .unwrap_or(1.0);
    let draft = ia
        .get_int("OfxImageEffectPropRenderQualityDraft", 0)
        .unwrap_or(0)
        != 0
        || scale < 0.999;
    let mut win = [0i32; 4];
    for (i, w) in win.iter_mut().enumerate() {
        *w = ia
            .get_int("OfxImageEffectPropRenderWindow", i as c_int)
            .unwrap_or(if i < 2 { i32::MIN } else { i32::MAX });
    }
    let p = read_params(s, effect, t).map_err(Failure::Error)?;
    let src = Image::fetch(s, effect, CLIP_SOURCE, t).map_err(Failure::Error)?;
    let out = Image::fetch(s, effect, CLIP_OUTPUT, t).map_err(Failure::Error)?;
    if p.steps < 1 {
        return Err(Failure::Error("Steps must be at least 1".into()));
    }
    let api = engine::api().map_err(Failure::Error)?;
    let strengths = p.strengths.trim().to_string();
    engine::check_strengths(api, &strengths)
        .map_err(|e| Failure::Error(format!("Strengths {:?}: {e}", p.strengths)))?;
    let (w, h) = (src.width(), src.height());
    let steps = if draft {
        (p.steps as u32).div_ceil(4)
    } else {
        p.steps as u32
    };
    let key = engine::Stage1Key {
        input_hash: src.content_hash(),
        width: w as u32,
        height: h as u32,
        model_dir: p.model_dir.clone(),
        strengths,
        seed: p.seed.max(0) as u64,
        steps,
        metrics: p.metrics.clone(),
    };
    let input = src.ttpo();
    let mut hooks = HostHooks {
        s: *s,
        effect,
        started: false,
        user_cancel: false,
    };
    if engine::Hooks::cancelled(&mut hooks) {
        return Err(Failure::Cancelled);
    }
    let result: Arc<Vec<f32>> = {
        let mut g = engine::cache();
        let cache = g.as_mut().unwrap();
        let conv = |e: engine::EngineError| {
            if e.cancelled {
                Failure::Cancelled
            } else {
                Failure::Error(format!("TTPO: {}", e.message))
            }
        };
        match p.view {
            1 => {
                let e = cache
                    .candidates(api, &key, &input, &mut hooks)
                    .map_err(conv)?;
                Arc::new(pixels::contact_sheet(&e.candidates, w, h))
            }
            2 => {
                let e = cache
                    .candidates(api, &key, &input, &mut hooks)
                    .map_err(conv)?;
                let n = e.candidates.len();
                e.candidates
                    .get(p.candidate.max(0) as usize)
                    .cloned()
                    .ok_or_else(|| {
                        Failure::Error(format!(
                            "Candidate {} does not exist: there are {n} (0..{})",
                            p.candidate,
                            n.saturating_sub(1)
                        ))
                    })?
            }
            _ => {
                let choice = p
                    .manual
                    .then_some((p.preferred.max(0) as u32, p.dispreferred.max(0) as u32));
                if let Some((a, b)) = choice {
                    if a == b {
                        return Err(Failure::Error(
                            "Preferred and Dispreferred must differ".into(),
                        ));
                    }
                }
                cache
                    .refined(api, &key, &input, choice, &mut hooks)
                    .map_err(conv)?
            }
        }
    };
    drop(hooks);
    // Write the render window (clipped to the output), mixing with the input.
    let mix = p.mix.clamp(0.0, 1.0) as f32;
    let (x1, y1) = (win[0].max(out.bounds[0]), win[1].max(out.bounds[1]));
    let (x2, y2) = (win[2].min(out.bounds[2]), win[3].min(out.bounds[3]));
    for y in y1..y2 {
        for x in x1..x2 {
            let inside =
                x >= src.bounds[0] && x < src.bounds[2] && y >= src.bounds[1] && y < src.bounds[3];
            let v = if inside {
                let r = (src.bounds[3] - 1 - y) as usize;
                let i = (r * w + (x - src.bounds[0]) as usize) * 4;
                let mut v = [result[i], result[i + 1], result[i + 2], result[i + 3]];
                if mix < 1.0 {
                    let a = pixels::read(src.at(x, y), src.depth, src.comps);
                    for c in 0..3 {
                        v[c] = a[c] + mix * (v[c] - a[c]);
                    }
                    v[3] = a[3];
                }
                v
            } else {
                [0.0; 4]
            };
            pixels::write(out.at(x, y), out.depth, out.comps, v);
        }
    }
    Ok(())
}

unsafe fn is_identity(s: &Suites, effect: Handle, in_args: Handle, out_args: Handle) -> OfxStatus {
    let t = Props {
        s: s.prop,
        h: in_args,
    }
    .get_dbl("OfxPropTime", 0)
    .unwrap_or(0.0);
    match get_d(s, effect, P_MIX, t) {
        Ok(m) if m <= 0.0 => {
            Props {
                s: s.prop,
                h: out_args,
            }
            .set_str("OfxPropName", 0, "Source");
            STAT_OK
        }
        _ => STAT_REPLY_DEFAULT,
    }
}

unsafe fn regions_of_interest(
    s: &Suites,
    effect: Handle,
    in_args: Handle,
    out_args: Handle,
) -> OfxStatus {
    // The engine needs the whole source frame whatever the render window.
    let t = Props {
        s: s.prop,
        h: in_args,
    }
    .get_dbl("OfxPropTime", 0)
    .unwrap_or(0.0);
    let mut ch = std::ptr::null_mut();
    if (s.effect.clip_get_handle)(effect, CLIP_SOURCE.as_ptr(), &mut ch, std::ptr::null_mut())
        != STAT_OK
    {
        return STAT_REPLY_DEFAULT;
    }
    let mut rod = OfxRectD::default();
    if (s.effect.clip_get_region_of_definition)(ch, t, &mut rod) != STAT_OK {
        return STAT_REPLY_DEFAULT;
    }
    let o = Props {
        s: s.prop,
        h: out_args,
    };
    for (i, v) in [rod.x1, rod.y1, rod.x2, rod.y2].into_iter().enumerate() {
        o.set_dbl("OfxImageClipPropRoI_Source", i as c_int, v);
    }
    STAT_OK
}

unsafe fn dispatch(action: &str, handle: Handle, in_args: Handle, out_args: Handle) -> OfxStatus {
    if action == ACTION_LOAD {
        return load();
    }
    let Some(s) = suites() else {
        return STAT_FAILED;
    };
    match action {
        ACTION_UNLOAD | ACTION_PURGE_CACHES => {
            engine::purge(engine_api_if_loaded());
            STAT_OK
        }
        ACTION_DESCRIBE => describe(&s, handle),
        ACTION_DESCRIBE_IN_CONTEXT => describe_in_context(&s, handle),
        ACTION_CREATE_INSTANCE | ACTION_DESTROY_INSTANCE => STAT_OK,
        ACTION_RENDER => render(&s, handle, in_args),
        ACTION_IS_IDENTITY => is_identity(&s, handle, in_args, out_args),
        ACTION_GET_ROI => regions_of_interest(&s, handle, in_args, out_args),
        _ => STAT_REPLY_DEFAULT,
    }
}

fn engine_api_if_loaded() -> Option<&'static engine::Api> {
    engine::loaded()
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
