//! The crate's errors: typed, with the facts an adapter needs to phrase its own message.

use std::path::PathBuf;

/// Why a model could not be resolved, downloaded or verified.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An explicit model folder does not exist.
    #[error("model folder {} does not exist", .0.display())]
    FolderMissing(PathBuf),
    /// A Hub repo is not in the cache at this revision, or only in part.
    #[error("model {repo} ({revision}) is {} in the Hugging Face cache {}", not_cached_state(.missing), .cache.display())]
    NotCached {
        /// Repo id.
        repo: String,
        /// Requested revision.
        revision: String,
        /// The hub cache folder that was searched.
        cache: PathBuf,
        /// What the cached snapshot lacks; empty when there is no snapshot at all.
        missing: Vec<String>,
    },
    /// A download was asked for while offline mode (`HF_HUB_OFFLINE`) is on.
    #[error("model {repo} ({revision}) cannot be downloaded: offline mode is on (HF_HUB_OFFLINE)")]
    Offline {
        /// Repo id.
        repo: String,
        /// Requested revision.
        revision: String,
    },
    /// The Hub answered with an error status, or could not be reached.
    #[error("{action} {repo} from {endpoint}: {detail} ({})", hub_hint(*.status))]
    Hub {
        /// What was being done ("cannot list", "cannot download unet/... of").
        action: String,
        /// Repo id.
        repo: String,
        /// The endpoint used.
        endpoint: String,
        /// The HTTP status when the Hub answered; `None` when it could not be reached.
        status: Option<u16>,
        /// The client's message, on one line.
        detail: String,
    },
    /// The repo lacks a file every diffusers SD 1.x/2.x repo has.
    #[error("{repo} ({revision}) has no {file}: not a diffusers Stable Diffusion 1.x/2.x repo")]
    NotDiffusers {
        /// Repo id.
        repo: String,
        /// Requested revision.
        revision: String,
        /// The missing file.
        file: String,
    },
    /// A file asked for by name is not in the repo.
    #[error("{repo} ({revision}) has no file {file}")]
    NotInRepo {
        /// Repo id.
        repo: String,
        /// Requested revision.
        revision: String,
        /// The file asked for.
        file: String,
    },
    /// A file is corrupt: wrong size, bad JSON, bad safetensors header.
    #[error("{}: {message}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The download was cancelled; finished files are kept, the current one resumes from
    /// its `.part` file next time.
    #[error("cancelled")]
    Cancelled,
    /// A local file operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn not_cached_state(missing: &[String]) -> String {
    if missing.is_empty() {
        "not".into()
    } else {
        format!("incomplete (missing {})", missing.join(", "))
    }
}

/// What to check for a failed Hub request, by HTTP status.
pub(crate) fn hub_hint(status: Option<u16>) -> &'static str {
    match status {
        Some(401 | 403) => "a gated or private repo needs a token: set HF_TOKEN",
        Some(404) => "check the repo id and revision",
        _ => "check the network or HF_ENDPOINT",
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// The Hub was not reached, or failed on its side (5xx): retrying later may help.
    /// Distinguishes a network failure from "this repo or file does not exist".
    pub fn is_network(&self) -> bool {
        matches!(self, Error::Hub { status, .. } if status.is_none_or(|s| s >= 500 || s == 429))
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
