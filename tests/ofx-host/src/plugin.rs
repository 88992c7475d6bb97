//! The plug-in binary as a host loads it, and the host's side of the API: the suites it
//! hands out (`fetchSuite`), the actions it sends.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use crate::image::{ImageBuf, Rows};
use crate::name_of;
use crate::ofx::*;
use crate::property::{PropSet, Val};
use crate::state::{Clip, Effect, Param, FETCHES, OFFER_MESSAGE_V2, OFFER_PROGRESS};
use crate::{image_effect, memory, message, multithread, param, progress, property, shim};

unsafe extern "C" fn fetch_suite(
    _host: Handle,
    name: *const c_char,
    version: c_int,
) -> *const c_void {
    let n = name_of(name);
    let p: *const c_void = match (n.as_str(), version) {
        ("OfxPropertySuite", 1) => &property::PROPERTY_SUITE as *const _ as *const c_void,
        ("OfxImageEffectSuite", 1) => {
            &image_effect::IMAGE_EFFECT_SUITE as *const _ as *const c_void
        }
        ("OfxParameterSuite", 1) => &param::PARAMETER_SUITE as *const _ as *const c_void,
        ("OfxMemorySuite", 1) => &memory::MEMORY_SUITE as *const _ as *const c_void,
        ("OfxMultiThreadSuite", 1) => &multithread::MULTITHREAD_SUITE as *const _ as *const c_void,
        ("OfxMessageSuite", 1) => &message::MESSAGE_SUITE as *const _ as *const c_void,
        ("OfxMessageSuite", 2) if OFFER_MESSAGE_V2.load(Ordering::SeqCst) => {
            &message::MESSAGE_SUITE as *const _ as *const c_void
        }
        ("OfxProgressSuite", 1) if OFFER_PROGRESS.load(Ordering::SeqCst) => {
            &progress::PROGRESS_SUITE as *const _ as *const c_void
        }
        _ => std::ptr::null(),
    };
    FETCHES.lock().unwrap().push((n, version, !p.is_null()));
    p
}

// ---------------------------------------------------------------- the plug-in binary

/// A loaded plug-in binary (one per bundle path).
pub struct Plugin {
    lib: Option<libloading::Library>,
    plugin: *mut OfxPlugin,
    host: Box<OfxHost>,
    _host_props: Box<PropSet>,
    pub path: PathBuf,
    pub id: String,
    pub version: (u32, u32),
    pub count: i32,
}

/// `<bundle>/Contents/Linux-x86-64/<name>.ofx`.
pub fn binary_in_bundle(bundle: &Path) -> PathBuf {
    let stem = bundle
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".ofx.bundle")
        .to_string();
    bundle
        .join("Contents/Linux-x86-64")
        .join(format!("{stem}.ofx"))
}

impl Plugin {
    /// dlopen, OfxGetNumberOfPlugins, OfxGetPlugin(0), setHost, then OfxActionLoad.
    pub fn load(bundle: &Path) -> Result<Plugin, String> {
        unsafe { shim::ofxshim_init(&shim::SHIM) };
        let path = binary_in_bundle(bundle);
        let lib = unsafe { libloading::Library::new(&path) }
            .map_err(|e| format!("dlopen {}: {e}", path.display()))?;
        let (count, plugin) = unsafe {
            let n: libloading::Symbol<unsafe extern "C" fn() -> c_int> = lib
                .get(b"OfxGetNumberOfPlugins\0")
                .map_err(|e| e.to_string())?;
            let g: libloading::Symbol<unsafe extern "C" fn(c_int) -> *mut OfxPlugin> =
                lib.get(b"OfxGetPlugin\0").map_err(|e| e.to_string())?;
            (n(), g(0))
        };
        if count < 1 || plugin.is_null() {
            return Err("no plug-in in the binary".into());
        }
        let pl = unsafe { &*plugin };
        let api = unsafe { CStr::from_ptr(pl.plugin_api) }
            .to_string_lossy()
            .into_owned();
        if api != "OfxImageEffectPluginAPI" || pl.api_version != 1 {
            return Err(format!("unexpected API {api} v{}", pl.api_version));
        }
        let host_props = PropSet::new();
        host_props.set_str("OfxPropType", "OfxTypeImageEffectHost");
        host_props.set_str("OfxPropName", "org.ttpo.ofx-test-host");
        host_props.set_str("OfxPropLabel", "TTPO OFX test host");
        host_props.set_int("OfxPropAPIVersion", 1);
        host_props.set_int("OfxImageEffectHostPropIsBackground", 1);
        host_props.set_int("OfxImageEffectPropSupportsOverlays", 0);
        host_props.set_int("OfxImageEffectPropSupportsMultiResolution", 1);
        host_props.set_int("OfxImageEffectPropSupportsTiles", 1);
        host_props.set_int("OfxImageEffectPropTemporalClipAccess", 0);
        host_props.set_strs(
            "OfxImageEffectPropSupportedComponents",
            &[COMPONENT_RGBA, COMPONENT_RGB],
        );
        host_props.set_strs(
            "OfxImageEffectPropSupportedContexts",
            &[CONTEXT_FILTER, CONTEXT_GENERAL],
        );
        host_props.set_strs(
            "OfxImageEffectPropSupportedPixelDepths",
            &[DEPTH_BYTE, DEPTH_SHORT, DEPTH_FLOAT],
        );
        host_props.set_int("OfxImageEffectPropSupportsMultipleClipDepths", 0);
        host_props.set_int("OfxParamHostPropSupportsStringAnimation", 0);
        let mut host = Box::new(OfxHost {
            host: host_props.handle(),
            fetch_suite: Some(fetch_suite),
        });
        unsafe { (pl.set_host.ok_or("no setHost")?)(host.as_mut()) };
        let p = Plugin {
            lib: Some(lib),
            plugin,
            host,
            _host_props: host_props,
            path,
            id: unsafe { CStr::from_ptr(pl.plugin_identifier) }
                .to_string_lossy()
                .into_owned(),
            version: (pl.plugin_version_major, pl.plugin_version_minor),
            count,
        };
        let st = p.action(ACTION_LOAD, std::ptr::null_mut(), None, None);
        if st != STAT_OK && st != STAT_REPLY_DEFAULT {
            return Err(format!("OfxActionLoad failed: {st}"));
        }
        Ok(p)
    }

    pub fn action(
        &self,
        action: &str,
        handle: Handle,
        inp: Option<&PropSet>,
        out: Option<&PropSet>,
    ) -> OfxStatus {
        let a = CString::new(action).unwrap();
        let entry = unsafe { (*self.plugin).main_entry.expect("mainEntry") };
        let _ = &self.host;
        unsafe {
            entry(
                a.as_ptr(),
                handle as *const c_void,
                inp.map_or(std::ptr::null_mut(), |p| p.handle()),
                out.map_or(std::ptr::null_mut(), |p| p.handle()),
            )
        }
    }

    /// OfxActionDescribe on a fresh descriptor.
    pub fn describe(&self) -> Result<Box<Effect>, OfxStatus> {
        let d = Effect::new();
        d.props.set_str("OfxPropType", "OfxTypeImageEffect");
        match self.action(ACTION_DESCRIBE, d.handle(), None, None) {
            STAT_OK | STAT_REPLY_DEFAULT => Ok(d),
            s => Err(s),
        }
    }

    /// OfxImageEffectActionDescribeInContext on a copy of the descriptor's properties.
    pub fn describe_in_context(
        &self,
        desc: &Effect,
        context: &str,
    ) -> Result<Box<Effect>, OfxStatus> {
        let mut d = Effect::new();
        d.props = desc.props.clone_box();
        d.props.set_str("OfxImageEffectPropContext", context);
        let ia = PropSet::new();
        ia.set_str("OfxImageEffectPropContext", context);
        match self.action(ACTION_DESCRIBE_IN_CONTEXT, d.handle(), Some(&ia), None) {
            STAT_OK | STAT_REPLY_DEFAULT => Ok(d),
            s => Err(s),
        }
    }

    /// An instance with the clips and parameters of `ctx_desc` (parameters at their defaults).
    pub fn create_instance(
        &self,
        ctx_desc: &Effect,
        context: &str,
    ) -> Result<Box<Effect>, OfxStatus> {
        let mut e = Effect::new();
        e.props = ctx_desc.props.clone_box();
        e.props.set_str("OfxPropType", "OfxTypeImageEffectInstance");
        e.props.set_str("OfxImageEffectPropContext", context);
        e.props.set_int("OfxPropIsInteractive", 0);
        for c in ctx_desc.clips.lock().unwrap().iter() {
            let props = c.props.clone_box();
            props.set_int("OfxImageClipPropConnected", 1);
            e.clips.lock().unwrap().push(Box::new(Clip {
                name: c.name.clone(),
                props,
                image: Mutex::new(None),
            }));
        }
        for p in ctx_desc.params.params.lock().unwrap().iter() {
            let value = match (p.kind.as_str(), p.props.get("OfxParamPropDefault", 0)) {
                ("OfxParamTypeString", Some(Val::Str(s))) => Val::Str(s),
                ("OfxParamTypeString", _) => Val::Str(CString::default()),
                ("OfxParamTypeDouble", d) => Val::Dbl(match d {
                    Some(Val::Dbl(x)) => x,
                    Some(Val::Int(i)) => i as f64,
                    _ => 0.0,
                }),
                (_, Some(Val::Int(i))) => Val::Int(i),
                _ => Val::Int(0),
            };
            e.params.params.lock().unwrap().push(Box::new(Param {
                name: p.name.clone(),
                kind: p.kind.clone(),
                props: p.props.clone_box(),
                value: Mutex::new(value),
            }));
        }
        match self.action(ACTION_CREATE_INSTANCE, e.handle(), None, None) {
            STAT_OK | STAT_REPLY_DEFAULT => Ok(e),
            s => Err(s),
        }
    }

    /// Sets a parameter as a user edit would, then sends OfxActionInstanceChanged.
    pub fn set_param(&self, inst: &Effect, name: &str, v: Val) {
        let p = inst
            .param(name)
            .unwrap_or_else(|| panic!("no parameter {name}"));
        *p.value.lock().unwrap() = v;
        let ia = PropSet::new();
        ia.set_str("OfxPropType", "OfxTypeParameter");
        ia.set_str("OfxPropName", name);
        ia.set_str("OfxPropChangeReason", "OfxChangeUserEdited");
        ia.set_dbls("OfxPropTime", &[0.0]);
        ia.set_dbls("OfxImageEffectPropRenderScale", &[1.0, 1.0]);
        self.action(
            "OfxActionBeginInstanceChanged",
            inst.handle(),
            Some(&ia),
            None,
        );
        self.action("OfxActionInstanceChanged", inst.handle(), Some(&ia), None);
        self.action(
            "OfxActionEndInstanceChanged",
            inst.handle(),
            Some(&ia),
            None,
        );
    }

    /// OfxImageEffectActionGetRegionOfDefinition: the effect's output region at `time` and
    /// render `scale` (canonical coordinates), or None when it replies default (the
    /// source's region then, in the filter context).
    pub fn region_of_definition(&self, inst: &Effect, scale: f64, time: f64) -> Option<[f64; 4]> {
        let ia = PropSet::new();
        ia.set_dbls("OfxPropTime", &[time]);
        ia.set_dbls("OfxImageEffectPropRenderScale", &[scale, scale]);
        let out = PropSet::new();
        if self.action(ACTION_GET_ROD, inst.handle(), Some(&ia), Some(&out)) != STAT_OK {
            return None;
        }
        let mut r = [0.0; 4];
        for (i, v) in r.iter_mut().enumerate() {
            *v = match out.get("OfxImageEffectPropRegionOfDefinition", i) {
                Some(Val::Dbl(d)) => d,
                other => panic!("region of definition [{i}]: {other:?}"),
            };
        }
        Some(r)
    }

    /// Renders `src` into a new output image of `depth`/`comps`/`rows` (zeroed before the
    /// call), sized as the effect's region of definition (asked first, as hosts do; the
    /// source's bounds when the effect replies default). `window` defaults to the whole
    /// output.
    #[allow(clippy::too_many_arguments)]
    pub fn render(
        &self,
        inst: &Effect,
        src: ImageBuf,
        depth: &'static str,
        comps: usize,
        rows: Rows,
        window: Option<[i32; 4]>,
        scale: f64,
        time: f64,
    ) -> (OfxStatus, ImageBuf) {
        let bounds = src.bounds;
        let comp = |c: usize| {
            if c == 4 {
                COMPONENT_RGBA
            } else {
                COMPONENT_RGB
            }
        };
        let sc = inst.clip("Source").expect("Source clip");
        sc.props.set_str("OfxImageEffectPropPixelDepth", src.depth);
        sc.props
            .set_str("OfxImageEffectPropComponents", comp(src.comps));
        *sc.image.lock().unwrap() = Some(src);
        // The source's pixel bounds are its region at this render scale (the test images
        // start at 0, 0): the output is the effect's region at the same scale.
        let out_bounds = match self.region_of_definition(inst, scale, time) {
            Some(r) => [
                r[0] as i32,
                r[1] as i32,
                r[2].ceil() as i32,
                r[3].ceil() as i32,
            ],
            None => bounds,
        };
        let (w, h) = (
            (out_bounds[2] - out_bounds[0]) as usize,
            (out_bounds[3] - out_bounds[1]) as usize,
        );
        let oc = inst.clip("Output").expect("Output clip");
        oc.props.set_str("OfxImageEffectPropPixelDepth", depth);
        oc.props
            .set_str("OfxImageEffectPropComponents", comp(comps));
        let mut out = ImageBuf::new(w, h, depth, comps, rows, 8);
        out.bounds = out_bounds;
        *oc.image.lock().unwrap() = Some(out);
        // Ask for the regions of interest first, as hosts do.
        let ia = PropSet::new();
        ia.set_dbls("OfxPropTime", &[time]);
        ia.set_dbls("OfxImageEffectPropRenderScale", &[scale, scale]);
        ia.set_dbls(
            "OfxImageEffectPropRegionOfInterest",
            &[
                bounds[0] as f64,
                bounds[1] as f64,
                bounds[2] as f64,
                bounds[3] as f64,
            ],
        );
        let roi = PropSet::new();
        self.action(ACTION_GET_ROI, inst.handle(), Some(&ia), Some(&roi));
        let ia = PropSet::new();
        ia.set_dbls("OfxPropTime", &[time]);
        ia.set_str("OfxImageEffectPropFieldToRender", "OfxImageFieldNone");
        ia.set_ints(
            "OfxImageEffectPropRenderWindow",
            &window.unwrap_or(out_bounds),
        );
        ia.set_dbls("OfxImageEffectPropRenderScale", &[scale, scale]);
        ia.set_int("OfxImageEffectPropSequentialRenderStatus", 0);
        ia.set_int("OfxImageEffectPropInteractiveRenderStatus", 0);
        ia.set_int("OfxImageEffectPropRenderQualityDraft", 0);
        let st = self.action(ACTION_RENDER, inst.handle(), Some(&ia), None);
        let out = oc.image.lock().unwrap().take().unwrap();
        (st, out)
    }

    #[allow(clippy::boxed_local)] // consumed: the instance is freed after the action
    pub fn destroy_instance(&self, inst: Box<Effect>) -> OfxStatus {
        self.action(ACTION_DESTROY_INSTANCE, inst.handle(), None, None)
    }
}

impl Drop for Plugin {
    /// OfxActionUnload, then dlclose.
    fn drop(&mut self) {
        self.action(ACTION_UNLOAD, std::ptr::null_mut(), None, None);
        drop(self.lib.take());
    }
}

/// Whether a library whose file name contains `name` is mapped into this process.
pub fn is_mapped(name: &str) -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.contains(name))
        .unwrap_or(false)
}
