//! The property suite: a property set is a `PropSet` (its address is the OFX handle),
//! a name mapped to a vector of values.

use std::collections::HashMap;
use std::ffi::{c_char, c_double, c_int, c_void, CStr, CString};
use std::sync::Mutex;

use crate::name_of;
use crate::ofx::*;

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

/// A getter's answer: the value into `*v`, or the error status.
pub(crate) unsafe fn answer<T>(r: Result<T, OfxStatus>, v: *mut T) -> OfxStatus {
    match r {
        Ok(x) => {
            *v = x;
            STAT_OK
        }
        Err(e) => e,
    }
}
unsafe extern "C" fn p_get_pointer(
    h: Handle,
    n: *const c_char,
    i: c_int,
    v: *mut *mut c_void,
) -> OfxStatus {
    let r = PropSet::lookup(h, n, i, |x| match x {
        Val::Ptr(p) => Some(*p),
        _ => None,
    });
    answer(r, v)
}
unsafe extern "C" fn p_get_string(
    h: Handle,
    n: *const c_char,
    i: c_int,
    v: *mut *mut c_char,
) -> OfxStatus {
    // The pointer stays valid until the property changes (the CString lives in the set).
    let r = PropSet::lookup(h, n, i, |x| match x {
        Val::Str(s) => Some(s.as_ptr() as *mut c_char),
        _ => None,
    });
    answer(r, v)
}
unsafe extern "C" fn p_get_double(
    h: Handle,
    n: *const c_char,
    i: c_int,
    v: *mut c_double,
) -> OfxStatus {
    let r = PropSet::lookup(h, n, i, |x| match x {
        Val::Dbl(d) => Some(*d),
        Val::Int(k) => Some(*k as f64),
        _ => None,
    });
    answer(r, v)
}
unsafe extern "C" fn p_get_int(h: Handle, n: *const c_char, i: c_int, v: *mut c_int) -> OfxStatus {
    let r = PropSet::lookup(h, n, i, |x| match x {
        Val::Int(k) => Some(*k),
        _ => None,
    });
    answer(r, v)
}

/// The `…N` form of a one-value accessor: indexes 0..count, stopping at the first failure.
macro_rules! n_values {
    ($name:ident, $one:ident, $ptr:ty, $at:ident) => {
        unsafe extern "C" fn $name(h: Handle, n: *const c_char, c: c_int, v: $ptr) -> OfxStatus {
            for i in 0..c {
                let s = $one(h, n, i, n_values!(@$at v, i));
                if s != STAT_OK {
                    return s;
                }
            }
            STAT_OK
        }
    };
    (@read $v:ident, $i:ident) => { *$v.add($i as usize) };
    (@write $v:ident, $i:ident) => { $v.add($i as usize) };
}
n_values!(p_set_pointer_n, p_set_pointer, *const *mut c_void, read);
n_values!(p_set_string_n, p_set_string, *const *const c_char, read);
n_values!(p_set_double_n, p_set_double, *const c_double, read);
n_values!(p_set_int_n, p_set_int, *const c_int, read);
n_values!(p_get_pointer_n, p_get_pointer, *mut *mut c_void, write);
n_values!(p_get_string_n, p_get_string, *mut *mut c_char, write);
n_values!(p_get_double_n, p_get_double, *mut c_double, write);
n_values!(p_get_int_n, p_get_int, *mut c_int, write);

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

pub(crate) static PROPERTY_SUITE: PropertySuiteV1 = PropertySuiteV1 {
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
