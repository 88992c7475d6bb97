//! The image effect suite: property and parameter sets of an effect, clips and their
//! images, abort, image memory.

use std::ffi::{c_char, c_double, c_int, c_void};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use crate::name_of;
use crate::ofx::*;
use crate::property::{PropSet, Val};
use crate::state::{effect, found, props_out, Clip, ParamSet};

unsafe extern "C" fn e_get_property_set(h: Handle, out: *mut Handle) -> OfxStatus {
    props_out(effect(h).map(|e| &*e.props), out)
}
unsafe extern "C" fn e_get_param_set(h: Handle, out: *mut Handle) -> OfxStatus {
    let Some(e) = effect(h) else {
        return STAT_ERR_BAD_HANDLE;
    };
    *out = e.params.as_ref() as *const ParamSet as Handle;
    STAT_OK
}
unsafe extern "C" fn e_clip_define(h: Handle, name: *const c_char, out: *mut Handle) -> OfxStatus {
    let Some(e) = effect(h) else {
        return STAT_ERR_BAD_HANDLE;
    };
    let name = name_of(name);
    let props = PropSet::new();
    props.set_str("OfxPropType", "OfxTypeClip");
    props.set_str("OfxPropName", &name);
    let c = Box::new(Clip {
        name,
        props,
        image: Mutex::new(None),
    });
    *out = c.props.handle();
    e.clips.lock().unwrap().push(c);
    STAT_OK
}
unsafe extern "C" fn e_clip_get_handle(
    h: Handle,
    name: *const c_char,
    clip: *mut Handle,
    props: *mut Handle,
) -> OfxStatus {
    let Some(e) = effect(h) else {
        return STAT_ERR_BAD_HANDLE;
    };
    let Some(c) = e.clip(&name_of(name)) else {
        return STAT_ERR_UNKNOWN;
    };
    found(c as *const Clip as Handle, &c.props, clip, props)
}
unsafe extern "C" fn e_clip_get_property_set(clip: Handle, out: *mut Handle) -> OfxStatus {
    props_out((clip as *const Clip).as_ref().map(|c| &*c.props), out)
}
unsafe extern "C" fn e_clip_get_image(
    clip: Handle,
    _t: c_double,
    _region: *const OfxRectD,
    out: *mut Handle,
) -> OfxStatus {
    let Some(c) = (clip as *const Clip).as_ref() else {
        return STAT_ERR_BAD_HANDLE;
    };
    let g = c.image.lock().unwrap();
    let Some(img) = g.as_ref() else {
        return STAT_FAILED;
    };
    let p = PropSet::new();
    p.set_str("OfxPropType", "OfxTypeImage");
    p.set("OfxImagePropData", 0, Val::Ptr(img.ptr as *mut c_void));
    p.set_ints("OfxImagePropBounds", &img.bounds);
    p.set_ints("OfxImagePropRegionOfDefinition", &img.bounds);
    p.set_int("OfxImagePropRowBytes", img.row_bytes as i32);
    p.set_str("OfxImageEffectPropPixelDepth", img.depth);
    p.set_str(
        "OfxImageEffectPropComponents",
        if img.comps == 4 {
            COMPONENT_RGBA
        } else {
            COMPONENT_RGB
        },
    );
    p.set_str(
        "OfxImageEffectPropPreMultiplication",
        "OfxImageUnPreMultiplied",
    );
    p.set_dbls("OfxImageEffectPropRenderScale", &[1.0, 1.0]);
    p.set_dbls("OfxImagePropPixelAspectRatio", &[1.0]);
    p.set_str("OfxImagePropField", "OfxImageFieldNone");
    p.set_str(
        "OfxImagePropUniqueIdentifier",
        &format!("{}-{:p}", c.name, img.ptr),
    );
    *out = Box::into_raw(p) as Handle;
    STAT_OK
}
unsafe extern "C" fn e_clip_release_image(img: Handle) -> OfxStatus {
    if img.is_null() {
        return STAT_ERR_BAD_HANDLE;
    }
    drop(Box::from_raw(img as *mut PropSet));
    STAT_OK
}
unsafe extern "C" fn e_clip_get_rod(clip: Handle, _t: c_double, out: *mut OfxRectD) -> OfxStatus {
    let Some(c) = (clip as *const Clip).as_ref() else {
        return STAT_ERR_BAD_HANDLE;
    };
    let g = c.image.lock().unwrap();
    let b = g.as_ref().map(|i| i.bounds).unwrap_or([0; 4]);
    *out = OfxRectD {
        x1: b[0] as f64,
        y1: b[1] as f64,
        x2: b[2] as f64,
        y2: b[3] as f64,
    };
    STAT_OK
}
unsafe extern "C" fn e_abort(h: Handle) -> c_int {
    let Some(e) = effect(h) else { return 0 };
    let n = e.polls.fetch_add(1, Ordering::SeqCst) + 1;
    let after = e.abort_after.load(Ordering::SeqCst);
    (after >= 0 && n as i64 > after) as c_int
}
unsafe extern "C" fn e_mem_alloc(_h: Handle, n: usize, out: *mut Handle) -> OfxStatus {
    *out = Box::into_raw(Box::new(vec![0u8; n])) as Handle;
    STAT_OK
}
unsafe extern "C" fn e_mem_free(m: Handle) -> OfxStatus {
    if m.is_null() {
        return STAT_ERR_BAD_HANDLE;
    }
    drop(Box::from_raw(m as *mut Vec<u8>));
    STAT_OK
}
unsafe extern "C" fn e_mem_lock(m: Handle, out: *mut *mut c_void) -> OfxStatus {
    if m.is_null() {
        return STAT_ERR_BAD_HANDLE;
    }
    *out = (*(m as *mut Vec<u8>)).as_mut_ptr() as *mut c_void;
    STAT_OK
}
unsafe extern "C" fn e_mem_unlock(_m: Handle) -> OfxStatus {
    STAT_OK
}

pub(crate) static IMAGE_EFFECT_SUITE: ImageEffectSuiteV1 = ImageEffectSuiteV1 {
    get_property_set: e_get_property_set,
    get_param_set: e_get_param_set,
    clip_define: e_clip_define,
    clip_get_handle: e_clip_get_handle,
    clip_get_property_set: e_clip_get_property_set,
    clip_get_image: e_clip_get_image,
    clip_release_image: e_clip_release_image,
    clip_get_region_of_definition: e_clip_get_rod,
    abort: e_abort,
    image_memory_alloc: e_mem_alloc,
    image_memory_free: e_mem_free,
    image_memory_lock: e_mem_lock,
    image_memory_unlock: e_mem_unlock,
};
