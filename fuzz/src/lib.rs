//! Helpers shared by the fuzz targets: a byte reader that turns fuzz input into values,
//! the tiny model folder (made once per machine), an engine loaded once per process, and
//! the status checks every C call must pass.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use ttpo_ffi::engine::{ttpo_engine, ttpo_engine_new};

/// Reads values from the fuzz input; past its end every read yields zeros.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let s = self.take(N);
        out[..s.len()].copy_from_slice(s);
        out
    }
    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
    pub fn f64(&mut self) -> f64 {
        f64::from_bits(self.u64())
    }
    /// A u32 that is usually small (so that valid descriptions are common) and sometimes
    /// any value at all.
    pub fn size(&mut self) -> u32 {
        match self.u8() % 8 {
            0 => self.u32(),
            1 => [0, 1, 65535, 65536, 65537, u32::MAX][self.u8() as usize % 6],
            _ => self.u8() as u32 % 40,
        }
    }
    /// A length-prefixed byte string (at most 255 bytes).
    pub fn string(&mut self) -> &'a [u8] {
        let n = self.u8() as usize;
        self.take(n)
    }
}

/// The statuses a C call may return (`ttpo_status` values 0..=12).
pub const MAX_STATUS: u32 = 12;
/// `TTPO_STATUS_PANIC`: a panic caught at the boundary is a bug the fuzzer reports.
pub const PANIC: u32 = 12;

/// Asserts that `status` is a defined status and not a caught panic.
pub fn check_status(call: &str, status: u32) {
    assert!(status <= MAX_STATUS, "{call}: undefined status {status}");
    assert_ne!(
        status, PANIC,
        "{call}: a panic was caught at the C boundary"
    );
}

/// The tiny epsilon model (`ttpo::diffusion::tiny`, seed 0), written once under the
/// temporary folder and reused by every fuzz process (a new folder is built beside it and
/// renamed into place, so concurrent processes never see a half-written one).
pub fn tiny_model_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::temp_dir();
        let dir = base.join(format!("ttpo-fuzz-tiny-{}", ttpo::VERSION));
        if !dir.join("model_index.json").exists() {
            let tmp = base.join(format!("ttpo-fuzz-tiny-tmp-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            ttpo::diffusion::tiny::write_tiny_model(
                &tmp,
                ttpo::diffusion::tiny::TinyKind::Epsilon,
                0,
            )
            .expect("write the tiny model");
            if std::fs::rename(&tmp, &dir).is_err() {
                // Another process won the race; its folder is complete.
                let _ = std::fs::remove_dir_all(&tmp);
            }
        }
        dir
    })
}

/// An engine on the tiny model, loaded once per process through the C API.
pub fn engine() -> *const ttpo_engine {
    struct Engine(*mut ttpo_engine);
    // SAFETY: the engine is thread-safe (documented in ttpo.h) and never freed.
    unsafe impl Send for Engine {}
    unsafe impl Sync for Engine {}
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let dir =
                CString::new(tiny_model_dir().to_str().expect("UTF-8 temp path")).expect("no NUL");
            let mut e = std::ptr::null_mut();
            // SAFETY: valid string and out pointer.
            let st = unsafe { ttpo_engine_new(dir.as_ptr(), 1, 0, 1, &mut e) };
            assert_eq!(st, 0, "loading the tiny model failed");
            Engine(e)
        })
        .0
}
