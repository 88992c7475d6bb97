//! The ABI level, in a file of its own because `build.rs` compiles it too: the shared
//! library's soname is named after it, so the two cannot disagree.

/// The ABI level: bumped with every incompatible change of the C ABI. The shared library's
/// soname is `libttpo.so.<TTPO_ABI_VERSION>`.
pub const TTPO_ABI_VERSION: u32 = 1;
