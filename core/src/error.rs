//! The crate's one error type. Every variant says what failed and where (file, tensor,
//! parameter), so a user can act on the message without a backtrace.

use std::path::PathBuf;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of a model folder is missing.
    #[error("missing model file {path}: {hint}")]
    MissingFile {
        /// The file that was looked for.
        path: PathBuf,
        /// What the file is for / how to get it.
        hint: String,
    },
    /// A config or tokenizer file exists but cannot be used.
    #[error("invalid model file {path}: {reason}")]
    InvalidFile {
        /// The offending file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// Weights could not be loaded (corrupt safetensors, missing tensor, wrong shape).
    #[error("cannot load {component} weights from {path}: {reason}")]
    Weights {
        /// `unet`, `vae`, `text_encoder`, ...
        component: String,
        /// The weight file(s) or folder.
        path: PathBuf,
        /// candle's message, which names the tensor and the shapes.
        reason: String,
    },
    /// The model folder describes something this engine does not implement.
    #[error("unsupported model configuration in {path}: {reason}")]
    Unsupported {
        /// The config file.
        path: PathBuf,
        /// What is not supported.
        reason: String,
    },
    /// An image that cannot be processed (zero size, too large, non-finite values, ...).
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// A parameter outside its valid range.
    #[error("invalid option {name}: {reason}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// Why the value is rejected.
        reason: String,
    },
    /// A call made out of order (e.g. refine before candidates).
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// The job was cancelled through its cancel token.
    #[error("cancelled")]
    Cancelled,
    /// A quality metric failed.
    #[error("metric {metric}: {reason}")]
    Metric {
        /// The metric's name.
        metric: String,
        /// Why it failed.
        reason: String,
    },
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The machine has less free memory than a model needs; found before any work starts.
    #[error("{what} needs about {need_gib:.1} GiB of memory, {free_gib:.1} GiB are free: {hint}")]
    OutOfMemory {
        /// What was to be loaded or run.
        what: String,
        /// Estimated need in GiB.
        need_gib: f64,
        /// Free memory in GiB.
        free_gib: f64,
        /// What the user can do.
        hint: String,
    },
    /// A tensor operation failed (device out of memory, backend error).
    #[error("tensor backend: {0}")]
    Backend(#[from] candle_core::Error),
}

/// `Result` with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    /// Names the file an image error came from.
    pub(crate) fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            Error::InvalidImage(m) => Error::InvalidImage(format!("{}: {m}", path.display())),
            other => other,
        }
    }
    pub(crate) fn option(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidOption {
            name,
            reason: reason.into(),
        }
    }
}
