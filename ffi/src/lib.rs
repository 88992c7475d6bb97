//! libttpo: the stable C ABI of the TTPO engine. Only translates between C and the `ttpo`
//! crate: opaque handles, status codes, borrowed pixel buffers, per-job callbacks.
//!
//! Every export checks its pointers, validates enum inputs given as integers, writes
//! outputs only on success, and runs behind a panic boundary. The header `include/ttpo.h`
//! is generated from this crate by cbindgen (see `cbindgen.toml`).
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

pub mod abi;
pub mod engine;
pub mod image;
pub mod job;
pub mod metric;
pub mod model;
pub mod options;
pub mod panic;
pub mod restore;
pub mod sheet;
pub mod status;
pub mod version;
