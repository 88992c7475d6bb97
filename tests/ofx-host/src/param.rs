//! The parameter suite: definitions, handles and property sets; values go through the
//! C shim (shim.rs), which calls back into the value accessors here.

use std::ffi::{c_char, c_double, c_int, c_uint, c_void, CStr, CString};
use std::sync::Mutex;

use crate::name_of;
use crate::ofx::*;
use crate::property::{answer, PropSet, Val};
use crate::shim::*;
use crate::state::{found, props_out, Param, ParamSet};

unsafe extern "C" fn pa_define(
    ps: Handle,
    ty: *const c_char,
    name: *const c_char,
    out: *mut Handle,
) -> OfxStatus {
    let Some(set) = (ps as *const ParamSet).as_ref() else {
        return STAT_ERR_BAD_HANDLE;
    };
    let (kind, name) = (name_of(ty), name_of(name));
    let props = PropSet::new();
    props.set_str("OfxPropType", "OfxTypeParameter");
    props.set_str("OfxPropName", &name);
    props.set_str("OfxParamPropType", &kind);
    let value = match kind.as_str() {
        "OfxParamTypeString" => Val::Str(CString::default()),
        "OfxParamTypeDouble" => Val::Dbl(0.0),
        _ => Val::Int(0),
    };
    let p = Box::new(Param {
        name,
        kind,
        props,
        value: Mutex::new(value),
    });
    if !out.is_null() {
        *out = p.props.handle();
    }
    set.params.lock().unwrap().push(p);
    STAT_OK
}
unsafe extern "C" fn pa_get_handle(
    ps: Handle,
    name: *const c_char,
    param: *mut Handle,
    props: *mut Handle,
) -> OfxStatus {
    let Some(set) = (ps as *const ParamSet).as_ref() else {
        return STAT_ERR_BAD_HANDLE;
    };
    let n = name_of(name);
    let g = set.params.lock().unwrap();
    let Some(p) = g.iter().find(|p| p.name == n) else {
        return STAT_ERR_UNKNOWN;
    };
    found(p.as_ref() as *const Param as Handle, &p.props, param, props)
}
unsafe extern "C" fn pa_set_props(ps: Handle, out: *mut Handle) -> OfxStatus {
    props_out((ps as *const ParamSet).as_ref().map(|s| &*s.props), out)
}
unsafe extern "C" fn pa_props(p: Handle, out: *mut Handle) -> OfxStatus {
    props_out((p as *const Param).as_ref().map(|p| &*p.props), out)
}
unsafe extern "C" fn pa_num_keys(_p: Handle, n: *mut c_uint) -> OfxStatus {
    *n = 0;
    STAT_OK
}
unsafe extern "C" fn pa_key_time(_p: Handle, _k: c_uint, _t: *mut c_double) -> OfxStatus {
    STAT_ERR_BAD_INDEX
}
unsafe extern "C" fn pa_key_index(
    _p: Handle,
    _t: c_double,
    _d: c_int,
    _i: *mut c_int,
) -> OfxStatus {
    STAT_FAILED
}
unsafe extern "C" fn pa_delete_key(_p: Handle, _t: c_double) -> OfxStatus {
    STAT_ERR_BAD_INDEX
}
unsafe extern "C" fn pa_delete_all(_p: Handle) -> OfxStatus {
    STAT_OK
}
unsafe extern "C" fn pa_copy(_a: Handle, _b: Handle, _o: c_double, _r: *const c_void) -> OfxStatus {
    STAT_ERR_UNSUPPORTED
}
unsafe extern "C" fn pa_edit_begin(_s: Handle, _n: *const c_char) -> OfxStatus {
    STAT_OK
}
unsafe extern "C" fn pa_edit_end(_s: Handle) -> OfxStatus {
    STAT_OK
}

pub(crate) unsafe extern "C" fn cb_kind(p: Handle) -> c_int {
    match (p as *const Param).as_ref() {
        None => -1,
        Some(p) => match p.kind.as_str() {
            "OfxParamTypeDouble" => 1,
            "OfxParamTypeString" => 2,
            _ => 0,
        },
    }
}
/// `f` of the parameter's value, under its lock (a string's pointer stays valid until the
/// value changes, as OpenFX allows).
unsafe fn value_of<R>(p: Handle, f: impl FnOnce(&Val) -> Option<R>) -> Result<R, OfxStatus> {
    f(&(*(p as *const Param)).value.lock().unwrap()).ok_or(STAT_ERR_VALUE)
}
pub(crate) unsafe extern "C" fn cb_get_int(p: Handle, _t: c_double, v: *mut c_int) -> OfxStatus {
    let r = value_of(p, |x| match x {
        Val::Int(i) => Some(*i),
        _ => None,
    });
    answer(r, v)
}
pub(crate) unsafe extern "C" fn cb_get_double(
    p: Handle,
    _t: c_double,
    v: *mut c_double,
) -> OfxStatus {
    let r = value_of(p, |x| match x {
        Val::Dbl(d) => Some(*d),
        _ => None,
    });
    answer(r, v)
}
pub(crate) unsafe extern "C" fn cb_get_string(
    p: Handle,
    _t: c_double,
    v: *mut *mut c_char,
) -> OfxStatus {
    let r = value_of(p, |x| match x {
        Val::Str(s) => Some(s.as_ptr() as *mut c_char),
        _ => None,
    });
    answer(r, v)
}
pub(crate) unsafe extern "C" fn cb_set_int(p: Handle, v: c_int) -> OfxStatus {
    *(*(p as *const Param)).value.lock().unwrap() = Val::Int(v);
    STAT_OK
}
pub(crate) unsafe extern "C" fn cb_set_double(p: Handle, v: c_double) -> OfxStatus {
    *(*(p as *const Param)).value.lock().unwrap() = Val::Dbl(v);
    STAT_OK
}
pub(crate) unsafe extern "C" fn cb_set_string(p: Handle, v: *const c_char) -> OfxStatus {
    *(*(p as *const Param)).value.lock().unwrap() = Val::Str(CStr::from_ptr(v).to_owned());
    STAT_OK
}

pub(crate) static PARAMETER_SUITE: ParameterSuiteV1 = ParameterSuiteV1 {
    param_define: pa_define,
    param_get_handle: pa_get_handle,
    param_set_get_property_set: pa_set_props,
    param_get_property_set: pa_props,
    param_get_value: ofxshim_param_get_value,
    param_get_value_at_time: ofxshim_param_get_value_at_time,
    param_get_derivative: ofxshim_param_unsupported,
    param_get_integral: ofxshim_param_unsupported2,
    param_set_value: ofxshim_param_set_value,
    param_set_value_at_time: ofxshim_param_set_value_at_time,
    param_get_num_keys: pa_num_keys,
    param_get_key_time: pa_key_time,
    param_get_key_index: pa_key_index,
    param_delete_key: pa_delete_key,
    param_delete_all_keys: pa_delete_all,
    param_copy: pa_copy,
    param_edit_begin: pa_edit_begin,
    param_edit_end: pa_edit_end,
};
