//! The progress suite: records the start labels, counts starts, updates (checked to lie in
//! 0..1) and ends.

use std::ffi::{c_char, c_double};
use std::sync::atomic::Ordering;

use crate::name_of;
use crate::ofx::*;
use crate::state::effect;

unsafe extern "C" fn pr_start(h: Handle, label: *const c_char) -> OfxStatus {
    if let Some(e) = effect(h) {
        e.progress_starts.fetch_add(1, Ordering::SeqCst);
        let label = if label.is_null() {
            String::new()
        } else {
            name_of(label)
        };
        e.progress_labels.lock().unwrap().push(label);
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
pub(crate) static PROGRESS_SUITE: ProgressSuiteV1 = ProgressSuiteV1 {
    progress_start: pr_start,
    progress_update: pr_update,
    progress_end: pr_end,
};
