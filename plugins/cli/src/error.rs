//! The CLI's error type: one message line and a documented exit code.

use std::fmt;

/// Exit codes (documented in docs/CLI.md; never renumber).
pub mod code {
    /// Success.
    pub const OK: i32 = 0;
    /// Any other failure (I/O, backend, a failed file in a batch).
    pub const GENERIC: i32 = 1;
    /// Bad command line or option value.
    pub const USAGE: i32 = 2;
    /// The model is not available: not found, not cached while offline, download failed.
    pub const MODEL_MISSING: i32 = 3;
    /// An input image cannot be read or processed.
    pub const BAD_INPUT: i32 = 4;
    /// Model files exist but are unusable (corrupt or truncated weights, bad configs).
    pub const MODEL_INVALID: i32 = 5;
    /// Cancelled by Ctrl-C / SIGINT / SIGTERM.
    pub const CANCELLED: i32 = 130;
}

/// A failure with its exit code.
#[derive(Debug)]
pub struct CliError {
    /// Exit code.
    pub code: i32,
    /// One line, without the `error: ` prefix.
    pub message: String,
}

impl CliError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(code::USAGE, message)
    }
    pub fn generic(message: impl Into<String>) -> Self {
        Self::new(code::GENERIC, message)
    }
    pub fn input(message: impl Into<String>) -> Self {
        Self::new(code::BAD_INPUT, message)
    }
    pub fn cancelled() -> Self {
        Self::new(code::CANCELLED, "cancelled")
    }
    /// Reading an input image: I/O errors count as bad input too.
    pub fn from_input(e: ttpo::Error) -> Self {
        match e {
            ttpo::Error::Io { .. } | ttpo::Error::InvalidImage(_) => {
                Self::input(one_line(&e.to_string()))
            }
            other => other.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Collapses a multi-line message onto one line.
pub fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<ttpo::Error> for CliError {
    fn from(e: ttpo::Error) -> Self {
        use ttpo::Error as E;
        let code = match &e {
            E::Cancelled => code::CANCELLED,
            E::MissingFile { .. } => code::MODEL_MISSING,
            E::InvalidFile { .. } | E::Weights { .. } | E::Unsupported { .. } => {
                code::MODEL_INVALID
            }
            E::InvalidImage(_) => code::BAD_INPUT,
            E::InvalidOption { .. } => code::USAGE,
            _ => code::GENERIC,
        };
        Self::new(code, one_line(&e.to_string()))
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        Self::generic(one_line(&e.to_string()))
    }
}

pub type CliResult<T> = Result<T, CliError>;
