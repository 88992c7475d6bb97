//! The C-variadic functions of the parameter and message suites live in `shim.c`; it
//! forwards to these Rust callbacks.

use std::ffi::{c_char, c_double, c_int};

use crate::ofx::*;
use crate::{message, param};

extern "C" {
    pub(crate) fn ofxshim_init(cb: *const ShimCallbacks);
    pub(crate) fn ofxshim_param_get_value(p: Handle, ...) -> OfxStatus;
    pub(crate) fn ofxshim_param_get_value_at_time(p: Handle, t: c_double, ...) -> OfxStatus;
    pub(crate) fn ofxshim_param_set_value(p: Handle, ...) -> OfxStatus;
    pub(crate) fn ofxshim_param_set_value_at_time(p: Handle, t: c_double, ...) -> OfxStatus;
    pub(crate) fn ofxshim_param_unsupported(p: Handle, t: c_double, ...) -> OfxStatus;
    pub(crate) fn ofxshim_param_unsupported2(
        p: Handle,
        t1: c_double,
        t2: c_double,
        ...
    ) -> OfxStatus;
    pub(crate) fn ofxshim_message(
        h: Handle,
        ty: *const c_char,
        id: *const c_char,
        fmt: *const c_char,
        ...
    ) -> OfxStatus;
    pub(crate) fn ofxshim_set_persistent_message(
        h: Handle,
        ty: *const c_char,
        id: *const c_char,
        fmt: *const c_char,
        ...
    ) -> OfxStatus;
}

#[repr(C)]
pub(crate) struct ShimCallbacks {
    kind: unsafe extern "C" fn(Handle) -> c_int,
    get_int: unsafe extern "C" fn(Handle, c_double, *mut c_int) -> OfxStatus,
    get_double: unsafe extern "C" fn(Handle, c_double, *mut c_double) -> OfxStatus,
    get_string: unsafe extern "C" fn(Handle, c_double, *mut *mut c_char) -> OfxStatus,
    set_int: unsafe extern "C" fn(Handle, c_int) -> OfxStatus,
    set_double: unsafe extern "C" fn(Handle, c_double) -> OfxStatus,
    set_string: unsafe extern "C" fn(Handle, *const c_char) -> OfxStatus,
    message: unsafe extern "C" fn(
        Handle,
        *const c_char,
        *const c_char,
        *const c_char,
        c_int,
    ) -> OfxStatus,
}

pub(crate) static SHIM: ShimCallbacks = ShimCallbacks {
    kind: param::cb_kind,
    get_int: param::cb_get_int,
    get_double: param::cb_get_double,
    get_string: param::cb_get_string,
    set_int: param::cb_set_int,
    set_double: param::cb_set_double,
    set_string: param::cb_set_string,
    message: message::cb_message,
};
