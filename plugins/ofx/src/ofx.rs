//! Hand-written FFI of the OpenFX 1.4 subset this plug-in uses (ofxCore.h, ofxProperty.h,
//! ofxImageEffect.h, ofxParam.h, ofxMessage.h, ofxProgress.h, ofxMemory.h).
#![allow(dead_code)]

use std::ffi::{c_char, c_double, c_int, c_uint, c_void};

pub type OfxStatus = c_int;
pub type Handle = *mut c_void;

pub const STAT_OK: OfxStatus = 0;
pub const STAT_FAILED: OfxStatus = 1;
pub const STAT_ERR_FATAL: OfxStatus = 2;
pub const STAT_ERR_UNKNOWN: OfxStatus = 3;
pub const STAT_ERR_MISSING_HOST_FEATURE: OfxStatus = 4;
pub const STAT_ERR_UNSUPPORTED: OfxStatus = 5;
pub const STAT_ERR_BAD_HANDLE: OfxStatus = 9;
pub const STAT_ERR_BAD_INDEX: OfxStatus = 10;
pub const STAT_ERR_VALUE: OfxStatus = 11;
pub const STAT_REPLY_YES: OfxStatus = 12;
pub const STAT_REPLY_NO: OfxStatus = 13;
pub const STAT_REPLY_DEFAULT: OfxStatus = 14;
pub const STAT_ERR_IMAGE_FORMAT: OfxStatus = 1000;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OfxRectD {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

#[repr(C)]
pub struct OfxHost {
    pub host: Handle,
    pub fetch_suite: Option<unsafe extern "C" fn(Handle, *const c_char, c_int) -> *const c_void>,
}

pub type EntryPoint =
    unsafe extern "C" fn(*const c_char, *const c_void, Handle, Handle) -> OfxStatus;

#[repr(C)]
pub struct OfxPlugin {
    pub plugin_api: *const c_char,
    pub api_version: c_int,
    pub plugin_identifier: *const c_char,
    pub plugin_version_major: c_uint,
    pub plugin_version_minor: c_uint,
    pub set_host: Option<unsafe extern "C" fn(*mut OfxHost)>,
    pub main_entry: Option<EntryPoint>,
}

#[repr(C)]
pub struct PropertySuiteV1 {
    pub prop_set_pointer:
        unsafe extern "C" fn(Handle, *const c_char, c_int, *mut c_void) -> OfxStatus,
    pub prop_set_string:
        unsafe extern "C" fn(Handle, *const c_char, c_int, *const c_char) -> OfxStatus,
    pub prop_set_double: unsafe extern "C" fn(Handle, *const c_char, c_int, c_double) -> OfxStatus,
    pub prop_set_int: unsafe extern "C" fn(Handle, *const c_char, c_int, c_int) -> OfxStatus,
    pub prop_set_pointer_n:
        unsafe extern "C" fn(Handle, *const c_char, c_int, *const *mut c_void) -> OfxStatus,
    pub prop_set_string_n:
        unsafe extern "C" fn(Handle, *const c_char, c_int, *const *const c_char) -> OfxStatus,
    pub prop_set_double_n:
        unsafe extern "C" fn(Handle, *const c_char, c_int, *const c_double) -> OfxStatus,
    pub prop_set_int_n:
        unsafe extern "C" fn(Handle, *const c_char, c_int, *const c_int) -> OfxStatus,
    pub prop_get_pointer:
        unsafe extern "C" fn(Handle, *const c_char, c_int, *mut *mut c_void) -> OfxStatus,
    pub prop_get_string:
        unsafe extern "C" fn(Handle, *const c_char, c_int, *mut *mut c_char) -> OfxStatus,
    pub prop_get_double:
        unsafe extern "C" fn(Handle, *const c_char, c_int, *mut c_double) -> OfxStatus,
    pub prop_get_int: unsafe extern "C" fn(Handle, *const c_char, c_int, *mut c_int) -> OfxStatus,
    pub prop_get_pointer_n:
        unsafe extern "C" fn(Handle, *const c_char, c_int, *mut *mut c_void) -> OfxStatus,
    pub prop_get_string_n:
        unsafe extern "C" fn(Handle, *const c_char, c_int, *mut *mut c_char) -> OfxStatus,
    pub prop_get_double_n:
        unsafe extern "C" fn(Handle, *const c_char, c_int, *mut c_double) -> OfxStatus,
    pub prop_get_int_n: unsafe extern "C" fn(Handle, *const c_char, c_int, *mut c_int) -> OfxStatus,
    pub prop_reset: unsafe extern "C" fn(Handle, *const c_char) -> OfxStatus,
    pub prop_get_dimension: unsafe extern "C" fn(Handle, *const c_char, *mut c_int) -> OfxStatus,
}

#[repr(C)]
pub struct ImageEffectSuiteV1 {
    pub get_property_set: unsafe extern "C" fn(Handle, *mut Handle) -> OfxStatus,
    pub get_param_set: unsafe extern "C" fn(Handle, *mut Handle) -> OfxStatus,
    pub clip_define: unsafe extern "C" fn(Handle, *const c_char, *mut Handle) -> OfxStatus,
    pub clip_get_handle:
        unsafe extern "C" fn(Handle, *const c_char, *mut Handle, *mut Handle) -> OfxStatus,
    pub clip_get_property_set: unsafe extern "C" fn(Handle, *mut Handle) -> OfxStatus,
    pub clip_get_image:
        unsafe extern "C" fn(Handle, c_double, *const OfxRectD, *mut Handle) -> OfxStatus,
    pub clip_release_image: unsafe extern "C" fn(Handle) -> OfxStatus,
    pub clip_get_region_of_definition:
        unsafe extern "C" fn(Handle, c_double, *mut OfxRectD) -> OfxStatus,
    pub abort: unsafe extern "C" fn(Handle) -> c_int,
    pub image_memory_alloc: unsafe extern "C" fn(Handle, usize, *mut Handle) -> OfxStatus,
    pub image_memory_free: unsafe extern "C" fn(Handle) -> OfxStatus,
    pub image_memory_lock: unsafe extern "C" fn(Handle, *mut *mut c_void) -> OfxStatus,
    pub image_memory_unlock: unsafe extern "C" fn(Handle) -> OfxStatus,
}

#[repr(C)]
pub struct ParameterSuiteV1 {
    pub param_define:
        unsafe extern "C" fn(Handle, *const c_char, *const c_char, *mut Handle) -> OfxStatus,
    pub param_get_handle:
        unsafe extern "C" fn(Handle, *const c_char, *mut Handle, *mut Handle) -> OfxStatus,
    pub param_set_get_property_set: unsafe extern "C" fn(Handle, *mut Handle) -> OfxStatus,
    pub param_get_property_set: unsafe extern "C" fn(Handle, *mut Handle) -> OfxStatus,
    pub param_get_value: unsafe extern "C" fn(Handle, ...) -> OfxStatus,
    pub param_get_value_at_time: unsafe extern "C" fn(Handle, c_double, ...) -> OfxStatus,
    pub param_get_derivative: unsafe extern "C" fn(Handle, c_double, ...) -> OfxStatus,
    pub param_get_integral: unsafe extern "C" fn(Handle, c_double, c_double, ...) -> OfxStatus,
    pub param_set_value: unsafe extern "C" fn(Handle, ...) -> OfxStatus,
    pub param_set_value_at_time: unsafe extern "C" fn(Handle, c_double, ...) -> OfxStatus,
    pub param_get_num_keys: unsafe extern "C" fn(Handle, *mut c_uint) -> OfxStatus,
    pub param_get_key_time: unsafe extern "C" fn(Handle, c_uint, *mut c_double) -> OfxStatus,
    pub param_get_key_index: unsafe extern "C" fn(Handle, c_double, c_int, *mut c_int) -> OfxStatus,
    pub param_delete_key: unsafe extern "C" fn(Handle, c_double) -> OfxStatus,
    pub param_delete_all_keys: unsafe extern "C" fn(Handle) -> OfxStatus,
    pub param_copy: unsafe extern "C" fn(Handle, Handle, c_double, *const c_void) -> OfxStatus,
    pub param_edit_begin: unsafe extern "C" fn(Handle, *const c_char) -> OfxStatus,
    pub param_edit_end: unsafe extern "C" fn(Handle) -> OfxStatus,
}

pub type MessageFn =
    unsafe extern "C" fn(Handle, *const c_char, *const c_char, *const c_char, ...) -> OfxStatus;

#[repr(C)]
pub struct MessageSuiteV1 {
    pub message: MessageFn,
}

#[repr(C)]
pub struct MessageSuiteV2 {
    pub message: MessageFn,
    pub set_persistent_message: MessageFn,
    pub clear_persistent_message: unsafe extern "C" fn(Handle) -> OfxStatus,
}

#[repr(C)]
pub struct ProgressSuiteV1 {
    pub progress_start: unsafe extern "C" fn(Handle, *const c_char) -> OfxStatus,
    pub progress_update: unsafe extern "C" fn(Handle, c_double) -> OfxStatus,
    pub progress_end: unsafe extern "C" fn(Handle) -> OfxStatus,
}

// Names (ofxCore.h, ofxImageEffect.h, ofxParam.h, ofxMessage.h).
pub const API_IMAGE_EFFECT: &std::ffi::CStr = c"OfxImageEffectPluginAPI";
pub const SUITE_PROPERTY: &std::ffi::CStr = c"OfxPropertySuite";
pub const SUITE_IMAGE_EFFECT: &std::ffi::CStr = c"OfxImageEffectSuite";
pub const SUITE_PARAMETER: &std::ffi::CStr = c"OfxParameterSuite";
pub const SUITE_MESSAGE: &std::ffi::CStr = c"OfxMessageSuite";
pub const SUITE_PROGRESS: &std::ffi::CStr = c"OfxProgressSuite";

pub const ACTION_LOAD: &str = "OfxActionLoad";
pub const ACTION_UNLOAD: &str = "OfxActionUnload";
pub const ACTION_DESCRIBE: &str = "OfxActionDescribe";
pub const ACTION_DESCRIBE_IN_CONTEXT: &str = "OfxImageEffectActionDescribeInContext";
pub const ACTION_CREATE_INSTANCE: &str = "OfxActionCreateInstance";
pub const ACTION_DESTROY_INSTANCE: &str = "OfxActionDestroyInstance";
pub const ACTION_RENDER: &str = "OfxImageEffectActionRender";
pub const ACTION_IS_IDENTITY: &str = "OfxImageEffectActionIsIdentity";
pub const ACTION_GET_ROI: &str = "OfxImageEffectActionGetRegionsOfInterest";
pub const ACTION_GET_ROD: &str = "OfxImageEffectActionGetRegionOfDefinition";
pub const ACTION_PURGE_CACHES: &str = "OfxActionPurgeCaches";

pub const CONTEXT_FILTER: &str = "OfxImageEffectContextFilter";
pub const CONTEXT_GENERAL: &str = "OfxImageEffectContextGeneral";
pub const CLIP_SOURCE: &std::ffi::CStr = c"Source";
pub const CLIP_OUTPUT: &std::ffi::CStr = c"Output";

pub const DEPTH_BYTE: &str = "OfxBitDepthByte";
pub const DEPTH_SHORT: &str = "OfxBitDepthShort";
pub const DEPTH_FLOAT: &str = "OfxBitDepthFloat";
pub const COMPONENT_RGBA: &str = "OfxImageComponentRGBA";
pub const COMPONENT_RGB: &str = "OfxImageComponentRGB";

pub const PARAM_STRING: &std::ffi::CStr = c"OfxParamTypeString";
pub const PARAM_INTEGER: &std::ffi::CStr = c"OfxParamTypeInteger";
pub const PARAM_DOUBLE: &std::ffi::CStr = c"OfxParamTypeDouble";
pub const PARAM_CHOICE: &std::ffi::CStr = c"OfxParamTypeChoice";

pub const MESSAGE_ERROR: &std::ffi::CStr = c"OfxMessageError";
pub const MESSAGE_LOG: &std::ffi::CStr = c"OfxMessageLog";
