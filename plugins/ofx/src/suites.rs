//! The host: its pointer (from `setHost`), the suites fetched at load, and typed access to
//! property sets. Everything the other modules need to talk to the host lives here.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

use crate::ofx::*;

static HOST: AtomicPtr<OfxHost> = AtomicPtr::new(std::ptr::null_mut());

/// `setHost`: remembers the host for the load action.
pub unsafe extern "C" fn set_host(host: *mut OfxHost) {
    let _ = std::panic::catch_unwind(|| HOST.store(host, Ordering::SeqCst));
}

/// The suites the plug-in uses; the optional ones may be missing.
#[derive(Clone, Copy)]
pub struct Suites {
    pub prop: &'static PropertySuiteV1,
    pub effect: &'static ImageEffectSuiteV1,
    pub param: &'static ParameterSuiteV1,
    pub msg1: Option<&'static MessageSuiteV1>,
    pub msg2: Option<&'static MessageSuiteV2>,
    pub progress: Option<&'static ProgressSuiteV1>,
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

/// The suites fetched by [`load`] (None before it).
pub fn suites() -> Option<Suites> {
    *SUITES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The load action: fetches the suites (property, image effect and parameter are required).
pub unsafe fn load() -> OfxStatus {
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
pub struct Props {
    pub s: &'static PropertySuiteV1,
    pub h: Handle,
}

/// A C string of `name` (empty if it holds a NUL).
pub fn c(name: &str) -> CString {
    CString::new(name).unwrap_or_default()
}

impl Props {
    pub fn set_str(&self, name: &str, i: c_int, v: &str) {
        unsafe { (self.s.prop_set_string)(self.h, c(name).as_ptr(), i, c(v).as_ptr()) };
    }
    pub fn set_strs(&self, name: &str, v: &[&str]) {
        for (i, x) in v.iter().enumerate() {
            self.set_str(name, i as c_int, x);
        }
    }
    pub fn set_int(&self, name: &str, i: c_int, v: c_int) {
        unsafe { (self.s.prop_set_int)(self.h, c(name).as_ptr(), i, v) };
    }
    pub fn set_dbl(&self, name: &str, i: c_int, v: f64) {
        unsafe { (self.s.prop_set_double)(self.h, c(name).as_ptr(), i, v) };
    }
    pub fn get_int(&self, name: &str, i: c_int) -> Option<c_int> {
        let mut v = 0;
        (unsafe { (self.s.prop_get_int)(self.h, c(name).as_ptr(), i, &mut v) } == STAT_OK)
            .then_some(v)
    }
    pub fn get_dbl(&self, name: &str, i: c_int) -> Option<f64> {
        let mut v = 0.0;
        (unsafe { (self.s.prop_get_double)(self.h, c(name).as_ptr(), i, &mut v) } == STAT_OK)
            .then_some(v)
    }
    pub fn get_str(&self, name: &str, i: c_int) -> Option<String> {
        let mut v: *mut c_char = std::ptr::null_mut();
        let st = unsafe { (self.s.prop_get_string)(self.h, c(name).as_ptr(), i, &mut v) };
        (st == STAT_OK && !v.is_null())
            .then(|| unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
    }
    pub fn get_ptr(&self, name: &str, i: c_int) -> Option<*mut c_void> {
        let mut v = std::ptr::null_mut();
        (unsafe { (self.s.prop_get_pointer)(self.h, c(name).as_ptr(), i, &mut v) } == STAT_OK)
            .then_some(v)
    }
}

/// Shows `msg` as the effect's persistent error (message suite v2), else as a message (v1).
pub unsafe fn post_error(s: &Suites, effect: Handle, msg: &str) {
    match s.msg2 {
        Some(m2) => post(m2.set_persistent_message, effect, MESSAGE_ERROR, msg),
        None => post_message(s, effect, MESSAGE_ERROR, msg),
    }
}

/// Writes `msg` to the host's log (`kOfxMessageLog`: logged, not shown); to stderr when the
/// host has no message suite.
pub unsafe fn post_log(s: &Suites, effect: Handle, msg: &str) {
    if s.msg2.is_none() && s.msg1.is_none() {
        eprintln!("{msg}");
    }
    post_message(s, effect, MESSAGE_LOG, msg);
}

/// A message of `kind` through the message suite (v2's, else v1's), if the host has one.
unsafe fn post_message(s: &Suites, effect: Handle, kind: &CStr, msg: &str) {
    if let Some(f) = s.msg2.map(|m| m.message).or(s.msg1.map(|m| m.message)) {
        post(f, effect, kind, msg);
    }
}

unsafe fn post(f: MessageFn, effect: Handle, kind: &CStr, msg: &str) {
    let m = c(msg);
    f(
        effect,
        kind.as_ptr(),
        crate::PLUGIN_ID.as_ptr(),
        c"%s".as_ptr(),
        m.as_ptr(),
    );
}
