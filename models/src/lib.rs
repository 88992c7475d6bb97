//! `ttpo-models`: where a TTPO model comes from, for every adapter (the `ttpo` CLI, libttpo's
//! C API and through it GIMP and OpenFX).
//!
//! It owns:
//! - [`cache`]: the Hugging Face cache layout shared with the Python tools (`HF_HOME`,
//!   `HF_HUB_CACHE`, `models--org--name/{blobs,refs,snapshots}`), looking up a repo at a
//!   revision ([`cache::locate`]) and listing what is cached;
//! - [`layout`]: which files of a diffusers Stable Diffusion folder the engine needs, and
//!   what a folder lacks;
//! - [`hub`]: the Hub endpoint, token and offline rules, and the repo listing;
//! - [`download`]: a resumable download into the cache with progress and cancel;
//! - [`verify`]: completeness, safetensors headers, sizes and SHA-256 against the Hub.
//!
//! **Why a crate of its own** rather than a module of `ttpo` (core): resolution needs an HTTP
//! client with TLS (ureq + rustls), and core is the numeric engine that every embedding links
//! — it stays free of network code, and a folder-only embedding keeps loading models with
//! `ttpo::Engine::load` alone. Rather than a module of the CLI (where it used to live):
//! the C API needs it too, so that a GIMP or OpenFX user can fetch the default model from the
//! host's dialog instead of a terminal. Both `ttpo-ffi` and `ttpo-cli` depend on this crate;
//! each keeps its own presentation (exit codes and messages naming `ttpo models download`
//! in the CLI, statuses in the C API) and maps [`Error`] to it.
//!
//! Nothing here prints: progress goes to a [`download::Progress`] implementation, and
//! failures are typed [`Error`]s that carry the facts (repo, revision, cache folder, what is
//! missing) for the adapter to phrase.
#![deny(missing_docs)]

pub mod cache;
pub mod download;
mod error;
#[cfg(feature = "fake-hub")]
pub mod fake_hub;
pub mod hub;
pub mod layout;
pub mod verify;

pub use cache::{hub_cache_dir, locate, CachedModel, Source};
pub use download::{download, Downloaded, Progress, Request, Transfer};
pub use error::{Error, Result};
pub use hub::Hub;

/// The default model: Stable Diffusion 2.1 base (512 px, epsilon prediction).
pub const DEFAULT_REPO: &str = "stabilityai/stable-diffusion-2-1-base";

/// The default revision.
pub const DEFAULT_REVISION: &str = "main";

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
