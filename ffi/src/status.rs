//! The status enum, its strings, and last-error bookkeeping.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::sync::Mutex;

/// Result of every fallible call. Values are fixed forever; new ones are only appended.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ttpo_status {
    /// Success.
    TTPO_STATUS_OK = 0,
    /// A required pointer argument was NULL.
    TTPO_STATUS_NULL_POINTER = 1,
    /// An argument is out of range (enum value, size, stride, option value).
    TTPO_STATUS_INVALID_ARGUMENT = 2,
    /// The image cannot be processed (zero or too large size, non-finite samples).
    TTPO_STATUS_INVALID_IMAGE = 3,
    /// A model file or folder is missing.
    TTPO_STATUS_MODEL_NOT_FOUND = 4,
    /// A model file is corrupt or does not match its config.
    TTPO_STATUS_MODEL_INVALID = 5,
    /// The model or request is not supported by this build.
    TTPO_STATUS_UNSUPPORTED = 6,
    /// The call is out of order (e.g. refine before candidates).
    TTPO_STATUS_INVALID_STATE = 7,
    /// The job was cancelled.
    TTPO_STATUS_CANCELLED = 8,
    /// The tensor backend failed (e.g. out of device memory).
    TTPO_STATUS_BACKEND = 9,
    /// File input/output failed.
    TTPO_STATUS_IO = 10,
    /// A quality metric failed.
    TTPO_STATUS_METRIC = 11,
    /// An internal error (a Rust panic) was caught at the boundary.
    TTPO_STATUS_PANIC = 12,
}

pub use ttpo_status::*;

impl From<&ttpo::Error> for ttpo_status {
    fn from(e: &ttpo::Error) -> Self {
        use ttpo::Error as E;
        match e {
            E::MissingFile { .. } => TTPO_STATUS_MODEL_NOT_FOUND,
            E::InvalidFile { .. } | E::Weights { .. } => TTPO_STATUS_MODEL_INVALID,
            E::Unsupported { .. } => TTPO_STATUS_UNSUPPORTED,
            E::InvalidImage(_) => TTPO_STATUS_INVALID_IMAGE,
            E::InvalidOption { .. } => TTPO_STATUS_INVALID_ARGUMENT,
            E::InvalidState(_) => TTPO_STATUS_INVALID_STATE,
            E::Cancelled => TTPO_STATUS_CANCELLED,
            E::Metric { .. } => TTPO_STATUS_METRIC,
            E::Io { .. } => TTPO_STATUS_IO,
            E::Backend(_) => TTPO_STATUS_BACKEND,
        }
    }
}

/// A static, NUL-terminated description of a status value (any integer is accepted).
#[no_mangle]
pub extern "C" fn ttpo_status_str(status: u32) -> *const c_char {
    let s: &'static std::ffi::CStr = match status {
        0 => c"ok",
        1 => c"null pointer argument",
        2 => c"invalid argument",
        3 => c"invalid image",
        4 => c"model not found",
        5 => c"invalid model files",
        6 => c"unsupported",
        7 => c"invalid state",
        8 => c"cancelled",
        9 => c"tensor backend error",
        10 => c"input/output error",
        11 => c"metric error",
        12 => c"internal error (panic)",
        _ => c"unknown status",
    };
    s.as_ptr()
}

/// A failure: the status plus the message for the last-error strings.
pub struct Failure {
    pub status: ttpo_status,
    pub message: String,
}

impl Failure {
    pub fn new(status: ttpo_status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn null(what: &str) -> Self {
        Self::new(TTPO_STATUS_NULL_POINTER, format!("{what} is NULL"))
    }
    pub fn arg(message: impl Into<String>) -> Self {
        Self::new(TTPO_STATUS_INVALID_ARGUMENT, message)
    }
}

impl From<ttpo::Error> for Failure {
    fn from(e: ttpo::Error) -> Self {
        Self::new((&e).into(), e.to_string())
    }
}

pub type FfiResult<T = ()> = Result<T, Failure>;

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).expect("NULs removed")
}

thread_local! {
    static THREAD_LAST: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `message` as this thread's last error.
pub fn set_thread_error(message: &str) {
    THREAD_LAST.with(|l| *l.borrow_mut() = c_string(message));
}

/// The message of the last failed call on this thread ("" if none). Valid until the next
/// failing call on this thread. Useful when a constructor failed and no handle exists.
#[no_mangle]
pub extern "C" fn ttpo_last_error() -> *const c_char {
    THREAD_LAST.with(|l| l.borrow().as_ptr())
}

/// A per-handle last-error string, safe to read from several threads at once.
///
/// Handles are shared across threads, so the string a reader holds must not be the one
/// another thread's failing call replaces (that was a use-after-free). Failing calls only
/// replace `latest`; each reading thread gets its own copy, which only that thread replaces
/// (on its next read of the same handle) and which lives until the handle is freed. Memory:
/// one message per thread that ever read the handle's error.
#[derive(Default)]
pub struct LastError(Mutex<Messages>);

#[derive(Default)]
struct Messages {
    latest: String,
    /// The copy handed to each reading thread.
    readers: Vec<(std::thread::ThreadId, CString)>,
}

impl LastError {
    pub fn set(&self, message: &str) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.latest.clear();
        g.latest.push_str(message);
    }
    /// The latest message, as a pointer valid until this thread reads this handle's error
    /// again or the handle is freed (whatever other threads do meanwhile).
    pub fn ptr(&self) -> *const c_char {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let me = std::thread::current().id();
        let latest = c_string(&g.latest);
        let slot = match g.readers.iter().position(|(id, _)| *id == me) {
            Some(i) => &mut g.readers[i].1,
            None => {
                g.readers.push((me, CString::default()));
                &mut g.readers.last_mut().expect("pushed").1
            }
        };
        // Replacing only when it changed keeps an earlier pointer of this thread valid
        // across repeated reads of the same message.
        if *slot != latest {
            *slot = latest;
        }
        // The CString's heap buffer does not move when `readers` grows.
        slot.as_ptr()
    }
}
