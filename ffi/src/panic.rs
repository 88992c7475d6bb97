//! The panic boundary every export goes through: a Rust panic becomes
//! `TTPO_STATUS_PANIC` plus a message, never an unwind into C.

use crate::status::{set_thread_error, Failure, FfiResult, LastError, TTPO_STATUS_OK};
use std::panic::{catch_unwind, AssertUnwindSafe};

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error: {what}")
}

/// Runs `f`, turning a panic into a [`Failure::panic`]. Used by [`guard`] and by the job,
/// which must mark its state before its lock is released (see `job.rs`).
pub fn catch<T>(f: impl FnOnce() -> FfiResult<T>) -> FfiResult<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(Failure::panic(panic_message(p))))
}

/// Runs `f`; maps its result (or a panic) to a status, recording failures in the thread's
/// last error and, when given, the handle's.
pub fn guard(handle_error: Option<&LastError>, f: impl FnOnce() -> FfiResult) -> u32 {
    match catch(f) {
        Ok(()) => TTPO_STATUS_OK as u32,
        Err(failure) => {
            set_thread_error(&failure.message);
            if let Some(h) = handle_error {
                h.set(&failure.message);
            }
            failure.status as u32
        }
    }
}

/// Runs an infallible `f`, returning `default` if it panics.
pub fn guard_value<T>(default: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        set_thread_error(&panic_message(p));
        default
    })
}

/// Test hook, compiled into debug builds only (`cargo test`; release libraries never read
/// the variable): when the environment variable `TTPO_TEST_FORCE_PANIC` equals `site`,
/// panic here. Lets the tests prove what a panic at the boundary leaves behind.
#[cfg(debug_assertions)]
pub fn test_hook(site: &str) {
    if std::env::var("TTPO_TEST_FORCE_PANIC").is_ok_and(|v| v == site) {
        panic!("forced panic at {site} (TTPO_TEST_FORCE_PANIC)");
    }
}

/// Serialises the unit tests that set `TTPO_TEST_FORCE_PANIC` (one environment per
/// process; a test's site must not be replaced by another's before its hook runs).
#[cfg(test)]
pub static TEST_HOOK_ENV: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// Release builds: no hook.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn test_hook(_site: &str) {}
