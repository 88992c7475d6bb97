//! The status enum, its strings, and last-error bookkeeping.

use parking_lot::Mutex;
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

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
    /// The model server could not be reached or failed on its side (retry later; check the
    /// network, a proxy or `HF_ENDPOINT`).
    TTPO_STATUS_NETWORK = 13,
    /// The machine has less free memory than the model or job needs (found before any work
    /// starts; the message says how much is needed and free).
    TTPO_STATUS_OUT_OF_MEMORY = 14,
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
            E::OutOfMemory { .. } => TTPO_STATUS_OUT_OF_MEMORY,
        }
    }
}

/// Every status with its name and its description: the one table the strings come from.
/// Row `i` is the status with value `i` (values are dense from 0; a test checks this and that
/// the rows match the enum in the generated header).
#[rustfmt::skip]
pub const STATUSES: [(ttpo_status, &str, &CStr); 15] = [
    (TTPO_STATUS_OK, "TTPO_STATUS_OK", c"ok"),
    (TTPO_STATUS_NULL_POINTER, "TTPO_STATUS_NULL_POINTER", c"null pointer argument"),
    (TTPO_STATUS_INVALID_ARGUMENT, "TTPO_STATUS_INVALID_ARGUMENT", c"invalid argument"),
    (TTPO_STATUS_INVALID_IMAGE, "TTPO_STATUS_INVALID_IMAGE", c"invalid image"),
    (TTPO_STATUS_MODEL_NOT_FOUND, "TTPO_STATUS_MODEL_NOT_FOUND", c"model not found"),
    (TTPO_STATUS_MODEL_INVALID, "TTPO_STATUS_MODEL_INVALID", c"invalid model files"),
    (TTPO_STATUS_UNSUPPORTED, "TTPO_STATUS_UNSUPPORTED", c"unsupported"),
    (TTPO_STATUS_INVALID_STATE, "TTPO_STATUS_INVALID_STATE", c"invalid state"),
    (TTPO_STATUS_CANCELLED, "TTPO_STATUS_CANCELLED", c"cancelled"),
    (TTPO_STATUS_BACKEND, "TTPO_STATUS_BACKEND", c"tensor backend error"),
    (TTPO_STATUS_IO, "TTPO_STATUS_IO", c"input/output error"),
    (TTPO_STATUS_METRIC, "TTPO_STATUS_METRIC", c"metric error"),
    (TTPO_STATUS_PANIC, "TTPO_STATUS_PANIC", c"internal error (panic)"),
    (TTPO_STATUS_NETWORK, "TTPO_STATUS_NETWORK", c"network error"),
    (TTPO_STATUS_OUT_OF_MEMORY, "TTPO_STATUS_OUT_OF_MEMORY", c"not enough memory"),
];

/// A static, NUL-terminated description of a status value (any integer is accepted).
#[no_mangle]
pub extern "C" fn ttpo_status_str(status: u32) -> *const c_char {
    STATUSES
        .get(status as usize)
        .map_or(c"unknown status", |row| row.2)
        .as_ptr()
}

/// A failure: the status plus the message for the last-error strings.
pub struct Failure {
    pub status: ttpo_status,
    pub message: String,
    /// A caught panic, not an error the code returned (see `panic::catch`).
    pub panicked: bool,
}

impl Failure {
    pub fn new(status: ttpo_status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            panicked: false,
        }
    }
    pub fn panic(message: String) -> Self {
        Self {
            panicked: true,
            ..Self::new(TTPO_STATUS_PANIC, message)
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
        let mut g = self.0.lock();
        g.latest.clear();
        g.latest.push_str(message);
    }
    /// The latest message, as a pointer valid until this thread reads this handle's error
    /// again or the handle is freed (whatever other threads do meanwhile).
    pub fn ptr(&self) -> *const c_char {
        let mut g = self.0.lock();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    /// `TTPO_STATUS_<NAME> = <value>` entries of the generated header (which the header test
    /// keeps equal to the enum above).
    fn header_statuses() -> Vec<(String, u32)> {
        let h = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../include/ttpo.h"))
            .expect("include/ttpo.h");
        h.lines()
            .filter_map(|l| {
                let (name, value) = l.trim().trim_end_matches(',').split_once(" = ")?;
                name.starts_with("TTPO_STATUS_")
                    .then(|| (name.to_string(), value.parse().expect("a number")))
            })
            .collect()
    }

    #[test]
    fn every_status_has_one_row_with_its_name_and_a_message() {
        let header = header_statuses();
        assert_eq!(header.len(), STATUSES.len(), "header: {header:?}");
        let mut messages = std::collections::HashSet::new();
        for (i, (status, name, message)) in STATUSES.iter().enumerate() {
            assert_eq!(*status as usize, i, "row {i} is {name}");
            assert_eq!(format!("{status:?}"), *name);
            assert!(
                header.contains(&(name.to_string(), i as u32)),
                "{name} = {i} not in the header"
            );
            assert!(
                !message.is_empty() && messages.insert(*message),
                "{name}: {message:?}"
            );
            let s = unsafe { CStr::from_ptr(ttpo_status_str(i as u32)) };
            assert_eq!(s, *message);
        }
    }

    #[test]
    fn unknown_values_have_a_string() {
        for v in [STATUSES.len() as u32, 1000, u32::MAX] {
            let s = unsafe { CStr::from_ptr(ttpo_status_str(v)) };
            assert_eq!(s, c"unknown status");
        }
    }
}
