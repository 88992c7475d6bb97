//! The multithread suite, minimal: runs the function for every index on the calling
//! thread; mutexes are spin locks.

use std::ffi::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::ofx::*;

type ThreadFn = unsafe extern "C" fn(c_uint, c_uint, *mut c_void);
#[repr(C)]
pub(crate) struct MultiThreadSuiteV1 {
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
pub(crate) static MULTITHREAD_SUITE: MultiThreadSuiteV1 = MultiThreadSuiteV1 {
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
