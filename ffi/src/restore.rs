//! The restoration networks the `restore` option takes, listed for hosts: count, names,
//! descriptions and scales from core's one table (`ttpo::restore::RestoreKind::ALL`), so a
//! plug-in's menu never repeats the list. Names are what `ttpo_options_set_restore` takes.

use crate::panic::guard_value;
use std::ffi::{c_char, CString};
use std::sync::OnceLock;
use ttpo::restore::RestoreKind;

/// Each network's name and description as C strings, made once (static for the caller).
fn kinds() -> &'static [(CString, CString)] {
    static K: OnceLock<Vec<(CString, CString)>> = OnceLock::new();
    K.get_or_init(|| {
        RestoreKind::ALL
            .iter()
            .map(|k| {
                let c = |s: &str| CString::new(s).expect("no NUL in the restore table");
                (c(k.name()), c(k.description()))
            })
            .collect()
    })
}

/// One string of network `index`, NULL past the last one.
fn nth(index: u32, field: fn(&(CString, CString)) -> &CString) -> *const c_char {
    guard_value(std::ptr::null(), || {
        kinds()
            .get(index as usize)
            .map_or(std::ptr::null(), |k| field(k).as_ptr())
    })
}

/// The number of restoration networks; indexes run from 0 to this minus 1.
#[no_mangle]
pub extern "C" fn ttpo_restore_count() -> u32 {
    guard_value(0, || RestoreKind::ALL.len() as u32)
}

/// The name of restoration network `index` ("realesrgan-x4", "rdn-x2", ...), as
/// `ttpo_options_set_restore` takes it; NULL past the last one. The string is static.
#[no_mangle]
pub extern "C" fn ttpo_restore_name(index: u32) -> *const c_char {
    nth(index, |k| &k.0)
}

/// One line about restoration network `index` for people (what it is for, its scale, how
/// heavy it is); NULL past the last one. The string is static.
#[no_mangle]
pub extern "C" fn ttpo_restore_description(index: u32) -> *const c_char {
    nth(index, |k| &k.1)
}

/// How many times larger network `index` makes the image (2, 3, 4 or 8): a job with it
/// outputs width x scale by height x scale. 0 past the last one.
#[no_mangle]
pub extern "C" fn ttpo_restore_scale(index: u32) -> u32 {
    guard_value(0, || {
        RestoreKind::ALL
            .get(index as usize)
            .map_or(0, |k| k.scale() as u32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn the_list_is_cores_table() {
        let n = ttpo_restore_count();
        assert_eq!(n as usize, ttpo::restore::NAMES.len());
        for (i, k) in RestoreKind::ALL.iter().enumerate() {
            let i = i as u32;
            let name = unsafe { CStr::from_ptr(ttpo_restore_name(i)) };
            let desc = unsafe { CStr::from_ptr(ttpo_restore_description(i)) };
            assert_eq!(name.to_str().unwrap(), ttpo::restore::NAMES[i as usize]);
            assert_eq!(RestoreKind::from_name(name.to_str().unwrap()).unwrap(), *k);
            assert_eq!(desc.to_str().unwrap(), k.description());
            assert_eq!(ttpo_restore_scale(i) as usize, k.scale());
        }
        assert_eq!(ttpo_restore_scale(3), 2, "rdn-x2");
        assert_eq!(ttpo_restore_scale(6), 8, "rdn-x8");
        // Static: the same pointer every time.
        assert_eq!(ttpo_restore_name(0), ttpo_restore_name(0));
        for past in [n, n + 1, u32::MAX] {
            assert!(ttpo_restore_name(past).is_null());
            assert!(ttpo_restore_description(past).is_null());
            assert_eq!(ttpo_restore_scale(past), 0);
        }
    }
}
