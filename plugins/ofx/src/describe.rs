//! The describe actions: the plug-in (labels, contexts, depths, threading), then per
//! context its clips and parameters. They never load libttpo: a host scans every plug-in at
//! start-up, and the scan must stay fast and work without the engine (or a GPU).

use crate::ofx::*;
use crate::suites::{Props, Suites};
use crate::{engine, params};

pub unsafe fn describe(s: &Suites, effect: Handle) -> OfxStatus {
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

pub unsafe fn describe_in_context(s: &Suites, effect: Handle) -> OfxStatus {
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
    // libttpo's metric list when a render already loaded it (never loaded here).
    let hint = engine::loaded().map(params::metrics_hint);
    params::define(s, ps, hint.as_deref());
    STAT_OK
}
