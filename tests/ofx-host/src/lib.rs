//! A small OpenFX 1.4 host, written for testing `TTPO.ofx.bundle` the way real hosts load
//! it: dlopen `Contents/Linux-x86-64/<name>.ofx`, `OfxGetNumberOfPlugins`/`OfxGetPlugin`,
//! `setHost`, then actions. Suites: property, image effect, parameter, memory, multithread
//! (minimal, single-threaded), message v1/v2 and progress v1. The C-variadic functions
//! (parameter get/set, messages) live in `shim.c`.

#[path = "../../../plugins/ofx/src/ofx.rs"]
pub mod ofx;

use std::collections::HashMap;
use std::ffi::{c_char, c_double, c_int, c_uint, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use ofx::*;

// ---------------------------------------------------------------- properties

#[derive(Clone, Debug)]
pub enum Val {
    Ptr(*mut c_void),
    Str(CString),
    Dbl(f64),
    Int(i32),
}
unsafe impl Send for Val {}

/// A property set; its address is the OFX handle.
#[derive(Default)]
pub struct PropSet {
    m: Mutex<HashMap<String, Vec<Val>>>,
}

impl PropSet {
    pub fn new() -> Box<PropSet> {
        Box::default()
    }
    pub fn handle(&self) -> Handle {
        self as *const PropSet as Handle
    }
    pub fn set(&self, name: &str, i: usize, v: Val) {
        let mut m = self.m.lock().unwrap();
        let e = m.entry(name.to_string()).or_default();
        if e.len() <= i {
            e.resize(i + 1, v.clone());
        }
        e[i] = v;
    }
    pub fn set_str(&self, name: &str, v: &str) {
        self.set(name, 0, Val::Str(CString::new(v).unwrap()));
    }
    pub fn set_strs(&self, name: &str, v: &[&str]) {
        self.m.lock().unwrap().insert(
            name.into(),
            v.iter()
                .map(|s| Val::Str(CString::new(*s).unwrap()))
                .collect(),
        );
    }
    pub fn set_int(&self, name: &str, v: i32) {
        self.set(name, 0, Val::Int(v));
    }
    pub fn set_ints(&self, name: &str, v: &[i32]) {
        self.m
            .lock()
            .unwrap()
            .insert(name.into(), v.iter().map(|x| Val::Int(*x)).collect());
    }
    pub fn set_dbls(&self, name: &str, v: &[f64]) {
        self.m
            .lock()
            .unwrap()
            .insert(name.into(), v.iter().map(|x| Val::Dbl(*x)).collect());
    }
    pub fn get(&self, name: &str, i: usize) -> Option<Val> {
        self.m
            .lock()
            .unwrap()
            .get(name)
            .and_then(|v| v.get(i).cloned())
    }
    pub fn all(&self, name: &str) -> Vec<Val> {
        self.m
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .unwrap_or_default()
    }
    pub fn get_str(&self, name: &str, i: usize) -> Option<String> {
        match self.get(name, i)? {
            Val::Str(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        }
    }
    pub fn get_int(&self, name: &str, i: usize) -> Option<i32> {
        match self.get(name, i)? {
            Val::Int(v) => Some(v),
            _ => None,
        }
    }
    pub fn get_dbl(&self, name: &str, i: usize) -> Option<f64> {
        match self.get(name, i)? {
            Val::Dbl(v) => Some(v),
            Val::Int(v) => Some(v as f64),
            _ => None,
        }
    }
    pub fn clone_box(&self) -> Box<PropSet> {
        Box::new(PropSet {
            m: Mutex::new(self.m.lock().unwrap().clone()),
        })
    }
    fn lookup<R>(
        h: Handle,
        name: *const c_char,
        i: c_int,
        f: impl FnOnce(&Val) -> Option<R>,
    ) -> Result<R, OfxStatus> {
        if h.is_null() || name.is_null() {
            return Err(STAT_ERR_BAD_HANDLE);
        }
        let p = unsafe { &*(h as *const PropSet) };
        let n = unsafe { CStr::from_ptr(name) }.to_string_lossy();
        let m = p.m.lock().unwrap();
        let v = m.get(n.as_ref()).ok_or(STAT_ERR_UNKNOWN)?;
        let x = v.get(i.max(0) as usize).ok_or(STAT_ERR_BAD_INDEX)?;
        f(x).ok_or(STAT_ERR_VALUE)
    }
}

unsafe fn name_of(p: *const c_char) -> String {
    CStr::from_ptr(p).to_string_lossy().into_owned()
}

unsafe fn pset(h: Handle, name: *const c_char, i: c_int, v: Val) -> OfxStatus {
    if h.is_null() || name.is_null() || i < 0 {
        return STAT_ERR_BAD_HANDLE;
    }
    (*(h as *const PropSet)).set(&name_of(name), i as usize, v);
    STAT_OK
}
unsafe extern "C" fn p_set_pointer(
    h: Handle,
    n: *const c_char,
    i: c_int,
    v: *mut c_void,
) -> OfxStatus {
    pset(h, n, i, Val::Ptr(v))
}
unsafe extern "C" fn p_set_string(
    h: Handle,
    n: *const c_char,
    i: c_int,
    v: *const c_char,
) -> OfxStatus {
    pset(
        h,
        n,
        i,
        Val::Str(if v.is_null() {
            CString::default()
        } else {
            CStr::from_ptr(v).to_owned()
        }),
    )
}
unsafe extern "C" fn p_set_double(h: Handle, n: *const c_char, i: c_int, v: c_double) -> OfxStatus {
    pset(h, n, i, Val::Dbl(v))
}
unsafe extern "C" fn p_set_int(h: Handle, n: *const c_char, i: c_int, v: c_int) -> OfxStatus {
    pset(h, n, i, Val::Int(v))
}
unsafe extern "C" fn p_set_pointer_n(
    h: Handle,
    n: *const c_char,
    c: c_int,
    v: *const *mut c_void,
) -> OfxStatus {
    for i in 0..c {
        let s = p_set_pointer(h, n, i, *v.add(i as usize));
        if s != STAT_OK {
            return s;
        }
    }
    STAT_OK
}
unsafe extern "C" fn p_set_string_n(
    h: Handle,
    n: *const c_char,
    c: c_int,
    v: *const *const c_char,
) -> OfxStatus {
    for i in 0..c {
        let s = p_set_string(h, n, i, *v.add(i as usize));
        if s != STAT_OK {
            return s;
        }
    }
    STAT_OK
}
unsafe extern "C" fn p_set_double_n(
    h: Handle,
    n: *const c_char,
    c: c_int,
    v: *const c_double,
) -> OfxStatus {
    for i in 0..c {
        let s = p_set_double(h, n, i, *v.add(i as usize));
        if s != STAT_OK {
            return s;
        }
    }
    STAT_OK
}
unsafe extern "C" fn p_set_int_n(
    h: Handle,
    n: *const c_char,
    c: c_int,
    v: *const c_int,
) -> OfxStatus {
    for i in 0..c {
        let s = p_set_int(h, n, i, *v.add(i as usize));
        if s != STAT_OK {
            return s;
        }
    }
    STAT_OK
}
unsafe extern "C" fn p_get_pointer(
    h: Handle,
    n: *const c_char,
    i: c_int,
    v: *mut *mut c_void,
) -> OfxStatus {
    match PropSet::lookup(
        h,
        n,
        i,
        |x| if let Val::Ptr(p) = x { Some(*p) } else { None },
    ) {
        Ok(p) => {
            *v = p;
            STAT_OK
        }
        Err(e) => e,
    }
}
unsafe extern "C" fn p_get_string(
    h: Handle,
    n: *const c_char,
    i: c_int,
    v: *mut *mut c_char,
) -> OfxStatus {
    // The pointer stays valid until the property changes (the CString lives in the set).
    match PropSet::lookup(h, n, i, |x| {
        if let Val::Str(s) = x {
            Some(s.as_ptr() as *mut c_char)
        } else {
            None
        }
    }) {
        Ok(p) => {
            *v = p;
            STAT_OK
        }
        Err(e) => e,
    }
}
unsafe extern "C" fn p_get_double(
    h: Handle,
    n: *const c_char,
    i: c_int,
    v: *mut c_double,
) -> OfxStatus {
    match PropSet::lookup(h, n, i, |x| match x {
        Val::Dbl(d) => Some(*d),
        Val::Int(k) => Some(*k as f64),
        _ => None,
    }) {
        Ok(p) => {
            *v = p;
            STAT_OK
        }
        Err(e) => e,
    }
}
unsafe extern "C" fn p_get_int(h: Handle, n: *const c_char, i: c_int, v: *mut c_int) -> OfxStatus {
    match PropSet::lookup(
        h,
        n,
        i,
        |x| if let Val::Int(k) = x { Some(*k) } else { None },
    ) {
        Ok(p) => {
            *v = p;
            STAT_OK
        }
        Err(e) => e,
    }
}
unsafe extern "C" fn p_get_pointer_n(
    h: Handle,
    n: *const c_char,
    c: c_int,
    v: *mut *mut c_void,
) -> OfxStatus {
    for i in 0..c {
        let s = p_get_pointer(h, n, i, v.add(i as usize));
        if s != STAT_OK {
            return s;
        }
    }
    STAT_OK
}
unsafe extern "C" fn p_get_string_n(
    h: Handle,
    n: *const c_char,
    c: c_int,
    v: *mut *mut c_char,
) -> OfxStatus {
    for i in 0..c {
        let s = p_get_string(h, n, i, v.add(i as usize));
        if s != STAT_OK {
            return s;
        }
    }
    STAT_OK
}
unsafe extern "C" fn p_get_double_n(
    h: Handle,
    n: *const c_char,
    c: c_int,
    v: *mut c_double,
) -> OfxStatus {
    for i in 0..c {
        let s = p_get_double(h, n, i, v.add(i as usize));
        if s != STAT_OK {
            return s;
        }
    }
    STAT_OK
}
unsafe extern "C" fn p_get_int_n(
    h: Handle,
    n: *const c_char,
    c: c_int,
    v: *mut c_int,
) -> OfxStatus {
    for i in 0..c {
        let s = p_get_int(h, n, i, v.add(i as usize));
        if s != STAT_OK {
            return s;
        }
    }
    STAT_OK
}
unsafe extern "C" fn p_reset(h: Handle, n: *const c_char) -> OfxStatus {
    if h.is_null() || n.is_null() {
        return STAT_ERR_BAD_HANDLE;
    }
    (*(h as *const PropSet))
        .m
        .lock()
        .unwrap()
        .remove(&name_of(n));
    STAT_OK
}
unsafe extern "C" fn p_get_dimension(h: Handle, n: *const c_char, c: *mut c_int) -> OfxStatus {
    if h.is_null() || n.is_null() {
        return STAT_ERR_BAD_HANDLE;
    }
    match (*(h as *const PropSet)).m.lock().unwrap().get(&name_of(n)) {
        Some(v) => {
            *c = v.len() as c_int;
            STAT_OK
        }
        None => STAT_ERR_UNKNOWN,
    }
}

static PROPERTY_SUITE: PropertySuiteV1 = PropertySuiteV1 {
    prop_set_pointer: p_set_pointer,
    prop_set_string: p_set_string,
    prop_set_double: p_set_double,
    prop_set_int: p_set_int,
    prop_set_pointer_n: p_set_pointer_n,
    prop_set_string_n: p_set_string_n,
    prop_set_double_n: p_set_double_n,
    prop_set_int_n: p_set_int_n,
    prop_get_pointer: p_get_pointer,
    prop_get_string: p_get_string,
    prop_get_double: p_get_double,
    prop_get_int: p_get_int,
    prop_get_pointer_n: p_get_pointer_n,
    prop_get_string_n: p_get_string_n,
    prop_get_double_n: p_get_double_n,
    prop_get_int_n: p_get_int_n,
    prop_reset: p_reset,
    prop_get_dimension: p_get_dimension,
};

// ---------------------------------------------------------------- images

/// A host-owned image. `row_bytes` may be negative (rows stored top-down) and may include
/// padding; `ptr` is the address of pixel (x1, y1), the bottom-left one.
pub struct ImageBuf {
    storage: Vec<u8>,
    pub bounds: [i32; 4],
    pub depth: &'static str,
    pub comps: usize,
    pub row_bytes: isize,
    ptr: *mut u8,
}
unsafe impl Send for ImageBuf {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// Positive rowBytes (the OFX norm: row y1 first in memory).
    BottomUp,
    /// Negative rowBytes (row y2-1 first in memory).
    TopDown,
}

pub fn depth_bytes(depth: &str) -> usize {
    match depth {
        DEPTH_BYTE => 1,
        DEPTH_SHORT => 2,
        _ => 4,
    }
}

impl ImageBuf {
    /// A zeroed image; `pad` extra bytes per row.
    pub fn new(
        w: usize,
        h: usize,
        depth: &'static str,
        comps: usize,
        rows: Rows,
        pad: usize,
    ) -> ImageBuf {
        let rb = w * comps * depth_bytes(depth) + pad;
        let mut storage = vec![0u8; rb * h.max(1)];
        let base = storage.as_mut_ptr();
        let (ptr, row_bytes) = match rows {
            Rows::BottomUp => (base, rb as isize),
            Rows::TopDown => (unsafe { base.add(rb * (h.max(1) - 1)) }, -(rb as isize)),
        };
        ImageBuf {
            storage,
            bounds: [0, 0, w as i32, h as i32],
            depth,
            comps,
            row_bytes,
            ptr,
        }
    }
    pub fn width(&self) -> usize {
        (self.bounds[2] - self.bounds[0]) as usize
    }
    pub fn height(&self) -> usize {
        (self.bounds[3] - self.bounds[1]) as usize
    }
    fn at(&self, x: usize, y_up: usize) -> *mut u8 {
        let off =
            y_up as isize * self.row_bytes + (x * self.comps * depth_bytes(self.depth)) as isize;
        let p = self.ptr.wrapping_offset(off);
        debug_assert!(p >= self.storage.as_ptr() as *mut u8);
        p
    }
    /// RGBA in 0..1 of pixel (x, row `r` counted from the top).
    pub fn get(&self, x: usize, r: usize) -> [f32; 4] {
        let p = self.at(x, self.height() - 1 - r);
        let mut o = [0.0, 0.0, 0.0, 1.0];
        for (c, v) in o.iter_mut().enumerate().take(self.comps) {
            *v = unsafe {
                match self.depth {
                    DEPTH_BYTE => *p.add(c) as f32 / 255.0,
                    DEPTH_SHORT => (p as *const u16).add(c).read_unaligned() as f32 / 65535.0,
                    _ => (p as *const f32).add(c).read_unaligned(),
                }
            };
        }
        o
    }
    pub fn put(&mut self, x: usize, r: usize, v: [f32; 4]) {
        let p = self.at(x, self.height() - 1 - r);
        for (c, x) in v.iter().enumerate().take(self.comps) {
            unsafe {
                match self.depth {
                    DEPTH_BYTE => *p.add(c) = (x.clamp(0.0, 1.0) * 255.0).round() as u8,
                    DEPTH_SHORT => (p as *mut u16)
                        .add(c)
                        .write_unaligned((x.clamp(0.0, 1.0) * 65535.0).round() as u16),
                    _ => (p as *mut f32).add(c).write_unaligned(*x),
                }
            }
        }
    }
    pub fn from_rgba8(
        img: &image::RgbaImage,
        depth: &'static str,
        comps: usize,
        rows: Rows,
        pad: usize,
    ) -> ImageBuf {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut b = ImageBuf::new(w, h, depth, comps, rows, pad);
        for (x, y, p) in img.enumerate_pixels() {
            let v = p.0.map(|c| c as f32 / 255.0);
            b.put(x as usize, y as usize, v);
        }
        b
    }
    pub fn to_rgba8(&self) -> image::RgbaImage {
        image::RgbaImage::from_fn(self.width() as u32, self.height() as u32, |x, y| {
            image::Rgba(
                self.get(x as usize, y as usize)
                    .map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8),
            )
        })
    }
    /// Largest absolute channel difference (RGB + alpha) with `o`, in 0..1 units.
    pub fn max_diff(&self, o: &ImageBuf) -> f32 {
        assert_eq!((self.width(), self.height()), (o.width(), o.height()));
        let mut m = 0f32;
        for r in 0..self.height() {
            for x in 0..self.width() {
                let (a, b) = (self.get(x, r), o.get(x, r));
                for c in 0..4 {
                    m = m.max((a[c] - b[c]).abs());
                }
            }
        }
        m
    }
}

// ---------------------------------------------------------------- effects, clips, params

pub struct Clip {
    pub name: String,
    pub props: Box<PropSet>,
    pub image: Mutex<Option<ImageBuf>>,
}

pub struct Param {
    pub name: String,
    pub kind: String,
    pub props: Box<PropSet>,
    pub value: Mutex<Val>,
}

#[derive(Default)]
pub struct ParamSet {
    pub props: Box<PropSet>,
    pub params: Mutex<Vec<Box<Param>>>,
}

#[derive(Clone, Debug)]
pub struct Message {
    pub kind: String,
    pub id: String,
    pub text: String,
    pub persistent: bool,
}

/// A descriptor or an instance; its address is the OFX handle.
#[derive(Default)]
pub struct Effect {
    pub props: Box<PropSet>,
    pub params: Box<ParamSet>,
    pub clips: Mutex<Vec<Box<Clip>>>,
    /// abort() answers 1 once it has been polled more than this many times (-1: never).
    pub abort_after: AtomicI64,
    pub polls: AtomicU64,
    pub messages: Mutex<Vec<Message>>,
    pub persistent: Mutex<Option<String>>,
    pub progress_starts: AtomicU64,
    pub progress_updates: AtomicU64,
    pub progress_ends: AtomicU64,
}

impl Effect {
    pub fn new() -> Box<Effect> {
        let e = Box::<Effect>::default();
        e.abort_after.store(-1, Ordering::SeqCst);
        e
    }
    pub fn handle(&self) -> Handle {
        self as *const Effect as Handle
    }
    pub fn clip(&self, name: &str) -> Option<&Clip> {
        let g = self.clips.lock().unwrap();
        g.iter()
            .find(|c| c.name == name)
            .map(|c| unsafe { &*(c.as_ref() as *const Clip) })
    }
    pub fn param(&self, name: &str) -> Option<&Param> {
        let g = self.params.params.lock().unwrap();
        g.iter()
            .find(|c| c.name == name)
            .map(|c| unsafe { &*(c.as_ref() as *const Param) })
    }
    pub fn param_names(&self) -> Vec<String> {
        self.params
            .params
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }
}

unsafe fn effect<'a>(h: Handle) -> Option<&'a Effect> {
    (h as *const Effect).as_ref()
}

unsafe extern "C" fn e_get_property_set(h: Handle, out: *mut Handle) -> OfxStatus {
    match effect(h) {
        Some(e) => {
            *out = e.props.handle();
            STAT_OK
        }
        None => STAT_ERR_BAD_HANDLE,
    }
}
unsafe extern "C" fn e_get_param_set(h: Handle, out: *mut Handle) -> OfxStatus {
    match effect(h) {
        Some(e) => {
            *out = e.params.as_ref() as *const ParamSet as Handle;
            STAT_OK
        }
        None => STAT_ERR_BAD_HANDLE,
    }
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
    *clip = c as *const Clip as Handle;
    if !props.is_null() {
        *props = c.props.handle();
    }
    STAT_OK
}
unsafe extern "C" fn e_clip_get_property_set(clip: Handle, out: *mut Handle) -> OfxStatus {
    match (clip as *const Clip).as_ref() {
        Some(c) => {
            *out = c.props.handle();
            STAT_OK
        }
        None => STAT_ERR_BAD_HANDLE,
    }
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

static IMAGE_EFFECT_SUITE: ImageEffectSuiteV1 = ImageEffectSuiteV1 {
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

// Parameters.
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
    *param = p.as_ref() as *const Param as Handle;
    if !props.is_null() {
        *props = p.props.handle();
    }
    STAT_OK
}
unsafe extern "C" fn pa_set_props(ps: Handle, out: *mut Handle) -> OfxStatus {
    match (ps as *const ParamSet).as_ref() {
        Some(s) => {
            *out = s.props.handle();
            STAT_OK
        }
        None => STAT_ERR_BAD_HANDLE,
    }
}
unsafe extern "C" fn pa_props(p: Handle, out: *mut Handle) -> OfxStatus {
    match (p as *const Param).as_ref() {
        Some(p) => {
            *out = p.props.handle();
            STAT_OK
        }
        None => STAT_ERR_BAD_HANDLE,
    }
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

extern "C" {
    fn ofxshim_init(cb: *const ShimCallbacks);
    fn ofxshim_param_get_value(p: Handle, ...) -> OfxStatus;
    fn ofxshim_param_get_value_at_time(p: Handle, t: c_double, ...) -> OfxStatus;
    fn ofxshim_param_set_value(p: Handle, ...) -> OfxStatus;
    fn ofxshim_param_set_value_at_time(p: Handle, t: c_double, ...) -> OfxStatus;
    fn ofxshim_param_unsupported(p: Handle, t: c_double, ...) -> OfxStatus;
    fn ofxshim_param_unsupported2(p: Handle, t1: c_double, t2: c_double, ...) -> OfxStatus;
    fn ofxshim_message(
        h: Handle,
        ty: *const c_char,
        id: *const c_char,
        fmt: *const c_char,
        ...
    ) -> OfxStatus;
    fn ofxshim_set_persistent_message(
        h: Handle,
        ty: *const c_char,
        id: *const c_char,
        fmt: *const c_char,
        ...
    ) -> OfxStatus;
}

#[repr(C)]
struct ShimCallbacks {
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

unsafe extern "C" fn cb_kind(p: Handle) -> c_int {
    match (p as *const Param).as_ref() {
        None => -1,
        Some(p) => match p.kind.as_str() {
            "OfxParamTypeDouble" => 1,
            "OfxParamTypeString" => 2,
            _ => 0,
        },
    }
}
unsafe extern "C" fn cb_get_int(p: Handle, _t: c_double, v: *mut c_int) -> OfxStatus {
    match &*(*(p as *const Param)).value.lock().unwrap() {
        Val::Int(i) => {
            *v = *i;
            STAT_OK
        }
        _ => STAT_ERR_VALUE,
    }
}
unsafe extern "C" fn cb_get_double(p: Handle, _t: c_double, v: *mut c_double) -> OfxStatus {
    match &*(*(p as *const Param)).value.lock().unwrap() {
        Val::Dbl(d) => {
            *v = *d;
            STAT_OK
        }
        _ => STAT_ERR_VALUE,
    }
}
unsafe extern "C" fn cb_get_string(p: Handle, _t: c_double, v: *mut *mut c_char) -> OfxStatus {
    match &*(*(p as *const Param)).value.lock().unwrap() {
        Val::Str(s) => {
            *v = s.as_ptr() as *mut c_char;
            STAT_OK
        }
        _ => STAT_ERR_VALUE,
    }
}
unsafe extern "C" fn cb_set_int(p: Handle, v: c_int) -> OfxStatus {
    *(*(p as *const Param)).value.lock().unwrap() = Val::Int(v);
    STAT_OK
}
unsafe extern "C" fn cb_set_double(p: Handle, v: c_double) -> OfxStatus {
    *(*(p as *const Param)).value.lock().unwrap() = Val::Dbl(v);
    STAT_OK
}
unsafe extern "C" fn cb_set_string(p: Handle, v: *const c_char) -> OfxStatus {
    *(*(p as *const Param)).value.lock().unwrap() = Val::Str(CStr::from_ptr(v).to_owned());
    STAT_OK
}
unsafe extern "C" fn cb_message(
    h: Handle,
    ty: *const c_char,
    id: *const c_char,
    text: *const c_char,
    persistent: c_int,
) -> OfxStatus {
    let m = Message {
        kind: if ty.is_null() {
            String::new()
        } else {
            name_of(ty)
        },
        id: if id.is_null() {
            String::new()
        } else {
            name_of(id)
        },
        text: name_of(text),
        persistent: persistent != 0,
    };
    eprintln!(
        "[ofx-host] {} {}: {}",
        if m.persistent {
            "persistent"
        } else {
            "message"
        },
        m.kind,
        m.text
    );
    if let Some(e) = effect(h) {
        if m.persistent {
            *e.persistent.lock().unwrap() = Some(m.text.clone());
        }
        e.messages.lock().unwrap().push(m);
    }
    STAT_OK
}
unsafe extern "C" fn clear_persistent(h: Handle) -> OfxStatus {
    if let Some(e) = effect(h) {
        *e.persistent.lock().unwrap() = None;
    }
    STAT_OK
}

static SHIM: ShimCallbacks = ShimCallbacks {
    kind: cb_kind,
    get_int: cb_get_int,
    get_double: cb_get_double,
    get_string: cb_get_string,
    set_int: cb_set_int,
    set_double: cb_set_double,
    set_string: cb_set_string,
    message: cb_message,
};

static PARAMETER_SUITE: ParameterSuiteV1 = ParameterSuiteV1 {
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

static MESSAGE_SUITE: MessageSuiteV2 = MessageSuiteV2 {
    message: ofxshim_message,
    set_persistent_message: ofxshim_set_persistent_message,
    clear_persistent_message: clear_persistent,
};

// Progress.
unsafe extern "C" fn pr_start(h: Handle, _label: *const c_char) -> OfxStatus {
    if let Some(e) = effect(h) {
        e.progress_starts.fetch_add(1, Ordering::SeqCst);
    }
    STAT_OK
}
unsafe extern "C" fn pr_update(h: Handle, f: c_double) -> OfxStatus {
    assert!((0.0..=1.0).contains(&f), "progress {f} out of 0..1");
    if let Some(e) = effect(h) {
        e.progress_updates.fetch_add(1, Ordering::SeqCst);
    }
    STAT_OK
}
unsafe extern "C" fn pr_end(h: Handle) -> OfxStatus {
    if let Some(e) = effect(h) {
        e.progress_ends.fetch_add(1, Ordering::SeqCst);
    }
    STAT_OK
}
static PROGRESS_SUITE: ProgressSuiteV1 = ProgressSuiteV1 {
    progress_start: pr_start,
    progress_update: pr_update,
    progress_end: pr_end,
};

// Memory.
#[repr(C)]
struct MemorySuiteV1 {
    alloc: unsafe extern "C" fn(Handle, usize, *mut *mut c_void) -> OfxStatus,
    free: unsafe extern "C" fn(*mut c_void) -> OfxStatus,
}
unsafe extern "C" fn m_alloc(_h: Handle, n: usize, out: *mut *mut c_void) -> OfxStatus {
    let p = libc::malloc(n.max(1));
    if p.is_null() {
        return STAT_ERR_MEMORY_;
    }
    *out = p;
    STAT_OK
}
const STAT_ERR_MEMORY_: OfxStatus = 8;
unsafe extern "C" fn m_free(p: *mut c_void) -> OfxStatus {
    libc::free(p);
    STAT_OK
}
static MEMORY_SUITE: MemorySuiteV1 = MemorySuiteV1 {
    alloc: m_alloc,
    free: m_free,
};

// Multithread: minimal (runs the function for every index on the calling thread).
type ThreadFn = unsafe extern "C" fn(c_uint, c_uint, *mut c_void);
#[repr(C)]
struct MultiThreadSuiteV1 {
    multi_thread: unsafe extern "C" fn(Option<ThreadFn>, c_uint, *mut c_void) -> OfxStatus,
    num_cpus: unsafe extern "C" fn(*mut c_uint) -> OfxStatus,
    index: unsafe extern "C" fn(*mut c_uint) -> OfxStatus,
    is_spawned: unsafe extern "C" fn() -> c_int,
    mutex_create: unsafe extern "C" fn(*mut Handle, c_int) -> OfxStatus,
    mutex_destroy: unsafe extern "C" fn(Handle) -> OfxStatus,
    mutex_lock: unsafe extern "C" fn(Handle) -> OfxStatus,
    mutex_unlock: unsafe extern "C" fn(Handle) -> OfxStatus,
    mutex_try_lock: unsafe extern "C" fn(Handle) -> OfxStatus,
}
unsafe extern "C" fn mt_run(f: Option<ThreadFn>, n: c_uint, arg: *mut c_void) -> OfxStatus {
    let Some(f) = f else {
        return STAT_ERR_BAD_HANDLE;
    };
    for i in 0..n.max(1) {
        f(i, n.max(1), arg);
    }
    STAT_OK
}
unsafe extern "C" fn mt_cpus(n: *mut c_uint) -> OfxStatus {
    *n = 1;
    STAT_OK
}
unsafe extern "C" fn mt_index(n: *mut c_uint) -> OfxStatus {
    *n = 0;
    STAT_OK
}
unsafe extern "C" fn mt_spawned() -> c_int {
    0
}
unsafe extern "C" fn mx_create(out: *mut Handle, _c: c_int) -> OfxStatus {
    *out = Box::into_raw(Box::new(AtomicBool::new(false))) as Handle;
    STAT_OK
}
unsafe extern "C" fn mx_destroy(m: Handle) -> OfxStatus {
    drop(Box::from_raw(m as *mut AtomicBool));
    STAT_OK
}
unsafe extern "C" fn mx_lock(m: Handle) -> OfxStatus {
    while (*(m as *const AtomicBool)).swap(true, Ordering::Acquire) {
        std::thread::yield_now();
    }
    STAT_OK
}
unsafe extern "C" fn mx_unlock(m: Handle) -> OfxStatus {
    (*(m as *const AtomicBool)).store(false, Ordering::Release);
    STAT_OK
}
unsafe extern "C" fn mx_try(m: Handle) -> OfxStatus {
    if (*(m as *const AtomicBool)).swap(true, Ordering::Acquire) {
        STAT_FAILED
    } else {
        STAT_OK
    }
}
static MULTITHREAD_SUITE: MultiThreadSuiteV1 = MultiThreadSuiteV1 {
    multi_thread: mt_run,
    num_cpus: mt_cpus,
    index: mt_index,
    is_spawned: mt_spawned,
    mutex_create: mx_create,
    mutex_destroy: mx_destroy,
    mutex_lock: mx_lock,
    mutex_unlock: mx_unlock,
    mutex_try_lock: mx_try,
};

/// Which optional suites the host offers (to test plug-in fallbacks).
pub static OFFER_PROGRESS: AtomicBool = AtomicBool::new(true);
pub static OFFER_MESSAGE_V2: AtomicBool = AtomicBool::new(true);
/// Every suite fetch: (name, version, granted).
pub static FETCHES: Mutex<Vec<(String, i32, bool)>> = Mutex::new(Vec::new());

unsafe extern "C" fn fetch_suite(
    _host: Handle,
    name: *const c_char,
    version: c_int,
) -> *const c_void {
    let n = name_of(name);
    let p: *const c_void = match (n.as_str(), version) {
        ("OfxPropertySuite", 1) => &PROPERTY_SUITE as *const _ as *const c_void,
        ("OfxImageEffectSuite", 1) => &IMAGE_EFFECT_SUITE as *const _ as *const c_void,
        ("OfxParameterSuite", 1) => &PARAMETER_SUITE as *const _ as *const c_void,
        ("OfxMemorySuite", 1) => &MEMORY_SUITE as *const _ as *const c_void,
        ("OfxMultiThreadSuite", 1) => &MULTITHREAD_SUITE as *const _ as *const c_void,
        ("OfxMessageSuite", 1) => &MESSAGE_SUITE as *const _ as *const c_void,
        ("OfxMessageSuite", 2) if OFFER_MESSAGE_V2.load(Ordering::SeqCst) => {
            &MESSAGE_SUITE as *const _ as *const c_void
        }
        ("OfxProgressSuite", 1) if OFFER_PROGRESS.load(Ordering::SeqCst) => {
            &PROGRESS_SUITE as *const _ as *const c_void
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
        unsafe { ofxshim_init(&SHIM) };
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

    /// Renders `src` into a new output image of `depth`/`comps`/`rows` (zeroed before the
    /// call). `window` defaults to the whole image.
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
        let (w, h) = (src.width(), src.height());
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
        let oc = inst.clip("Output").expect("Output clip");
        oc.props.set_str("OfxImageEffectPropPixelDepth", depth);
        oc.props
            .set_str("OfxImageEffectPropComponents", comp(comps));
        *oc.image.lock().unwrap() = Some(ImageBuf::new(w, h, depth, comps, rows, 8));
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
        ia.set_ints("OfxImageEffectPropRenderWindow", &window.unwrap_or(bounds));
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
