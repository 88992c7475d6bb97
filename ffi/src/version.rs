//! Version information at compile time (header macros) and run time.

use std::ffi::c_char;

/// Major version of the library (the soname follows `TTPO_ABI_VERSION`, not this).
pub const TTPO_VERSION_MAJOR: u32 = 0;
/// Minor version.
pub const TTPO_VERSION_MINOR: u32 = 1;
/// Patch version.
pub const TTPO_VERSION_PATCH: u32 = 0;
pub use crate::abi::TTPO_ABI_VERSION;

/// Backend bit: the CPU (always present).
pub const TTPO_BACKEND_CPU: u32 = 1;
/// Backend bit: NVIDIA CUDA (builds with the `cuda` feature).
pub const TTPO_BACKEND_CUDA: u32 = 2;
/// Backend bit: Apple Metal (builds with the `metal` feature).
pub const TTPO_BACKEND_METAL: u32 = 4;

/// The library version as "MAJOR.MINOR.PATCH" (static string).
#[no_mangle]
pub extern "C" fn ttpo_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The library version packed as MAJOR * 10000 + MINOR * 100 + PATCH.
#[no_mangle]
pub extern "C" fn ttpo_version_number() -> u32 {
    TTPO_VERSION_MAJOR * 10000 + TTPO_VERSION_MINOR * 100 + TTPO_VERSION_PATCH
}

/// The ABI level of the loaded library (compare with `TTPO_ABI_VERSION`).
#[no_mangle]
pub extern "C" fn ttpo_version_api() -> u32 {
    TTPO_ABI_VERSION
}

/// The backends compiled into this library, as `TTPO_BACKEND_*` bits.
#[no_mangle]
pub extern "C" fn ttpo_backends() -> u32 {
    let b = ttpo::device::compiled_backends();
    TTPO_BACKEND_CPU
        | if b.cuda { TTPO_BACKEND_CUDA } else { 0 }
        | if b.metal { TTPO_BACKEND_METAL } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_cargo_toml() {
        assert_eq!(
            TTPO_VERSION_MAJOR.to_string(),
            env!("CARGO_PKG_VERSION_MAJOR")
        );
        assert_eq!(
            TTPO_VERSION_MINOR.to_string(),
            env!("CARGO_PKG_VERSION_MINOR")
        );
        assert_eq!(
            TTPO_VERSION_PATCH.to_string(),
            env!("CARGO_PKG_VERSION_PATCH")
        );
    }
}
