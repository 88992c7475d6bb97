//! The memory suite (malloc/free).

use std::ffi::c_void;

use crate::ofx::*;

#[repr(C)]
pub(crate) struct MemorySuiteV1 {
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
pub(crate) static MEMORY_SUITE: MemorySuiteV1 = MemorySuiteV1 {
    alloc: m_alloc,
    free: m_free,
};
