//! The built-in Stage II metrics, listed for hosts: count, names and descriptions from
//! core's one table (`ttpo::scoring::METRICS`), so a plug-in's help text or menu never
//! repeats the list. Names are what `ttpo_options_set_metrics` takes.

use crate::panic::guard_value;
use std::ffi::{c_char, CString};
use std::sync::OnceLock;

/// Each metric's name and description as C strings, made once (static for the caller).
fn metrics() -> &'static [(CString, CString)] {
    static M: OnceLock<Vec<(CString, CString)>> = OnceLock::new();
    M.get_or_init(|| {
        ttpo::scoring::METRICS
            .iter()
            .map(|m| {
                let c = |s: &str| CString::new(s).expect("no NUL in the metrics table");
                (c(m.name), c(m.description))
            })
            .collect()
    })
}

/// One string of metric `index`, NULL past the last one.
fn nth(index: u32, field: fn(&(CString, CString)) -> &CString) -> *const c_char {
    guard_value(std::ptr::null(), || {
        metrics()
            .get(index as usize)
            .map_or(std::ptr::null(), |m| field(m).as_ptr())
    })
}

/// The number of built-in quality metrics (Stage II); indexes run from 0 to this minus 1.
#[no_mangle]
pub extern "C" fn ttpo_metric_count() -> u32 {
    guard_value(0, || metrics().len() as u32)
}

/// The name of metric `index` ("niqe", "piqe", ...), as `ttpo_options_set_metrics` takes
/// it; NULL past the last metric. The string is static.
#[no_mangle]
pub extern "C" fn ttpo_metric_name(index: u32) -> *const c_char {
    nth(index, |m| &m.0)
}

/// One line about metric `index` for people (what it measures, its direction, what it
/// needs); NULL past the last metric. The string is static.
#[no_mangle]
pub extern "C" fn ttpo_metric_description(index: u32) -> *const c_char {
    nth(index, |m| &m.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn the_list_is_cores_table() {
        let n = ttpo_metric_count();
        assert_eq!(n as usize, ttpo::scoring::METRICS.len());
        assert!(n >= 5);
        for (i, m) in ttpo::scoring::METRICS.iter().enumerate() {
            let name = unsafe { CStr::from_ptr(ttpo_metric_name(i as u32)) };
            let desc = unsafe { CStr::from_ptr(ttpo_metric_description(i as u32)) };
            assert_eq!(name.to_str().unwrap(), m.name);
            assert_eq!(desc.to_str().unwrap(), m.description);
        }
        // Static: the same pointer every time.
        assert_eq!(ttpo_metric_name(0), ttpo_metric_name(0));
        for past in [n, n + 1, u32::MAX] {
            assert!(ttpo_metric_name(past).is_null());
            assert!(ttpo_metric_description(past).is_null());
        }
    }
}
