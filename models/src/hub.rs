//! The Hugging Face Hub as the downloader sees it: endpoint, token and offline rules from the
//! environment (the Python tools' variables), the repo listing, and plain HTTP GETs with a
//! byte range. The cache layout is `cache.rs`; the download loop is `download.rs`.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::io::Read;
use std::time::Duration;

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// `HF_HUB_OFFLINE` is set to a true value (`1/true/yes/on`).
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| truthy(&v))
}

/// The Hub endpoint: `HF_ENDPOINT` or `https://huggingface.co`, without a trailing `/`.
pub fn endpoint_from_env() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "https://huggingface.co".into())
        .trim()
        .trim_end_matches('/')
        .to_string()
}

/// The token: `HF_TOKEN`, else the file `HF_TOKEN_PATH` or `<hf_home>/token`.
fn token_from_env() -> Option<String> {
    if let Ok(t) = std::env::var("HF_TOKEN") {
        if !t.trim().is_empty() {
            return Some(t.trim().to_string());
        }
    }
    let path = std::env::var_os("HF_TOKEN_PATH")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::cache::hf_home().join("token"));
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// One file of the Hub's listing.
#[derive(Clone, Debug, Deserialize)]
pub struct Sibling {
    /// Path in the repo.
    pub rfilename: String,
    /// Size in bytes (of the pointer file for LFS files on some endpoints).
    #[serde(default)]
    pub size: Option<u64>,
    /// The git blob id (the cache names non-LFS blobs by it).
    #[serde(default, rename = "blobId")]
    pub blob_id: Option<String>,
    /// LFS metadata of large files.
    #[serde(default)]
    pub lfs: Option<Lfs>,
}

/// LFS metadata of a file.
#[derive(Clone, Debug, Deserialize)]
pub struct Lfs {
    /// Size of the real file.
    #[serde(default)]
    pub size: Option<u64>,
    /// SHA-256 of the real file (the cache names LFS blobs by it).
    #[serde(default)]
    pub sha256: Option<String>,
}

impl Sibling {
    /// The file's real size, if listed.
    pub fn expected_size(&self) -> Option<u64> {
        self.lfs.as_ref().and_then(|l| l.size).or(self.size)
    }

    /// The name of its blob in the cache, when the listing tells it: the LFS SHA-256, else
    /// the git blob id (what `huggingface_hub` names blobs by, so caches are shared).
    pub fn blob_name(&self) -> Option<String> {
        self.lfs
            .as_ref()
            .and_then(|l| l.sha256.clone())
            .or_else(|| self.blob_id.clone())
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric()))
    }
}

/// The Hub's answer to `/api/models/{repo}/revision/{rev}?blobs=true`.
#[derive(Clone, Debug, Deserialize)]
pub struct Listing {
    /// The commit the revision points at.
    pub sha: String,
    /// The repo's files.
    pub siblings: Vec<Sibling>,
}

impl Listing {
    /// The listing's entry for `file`.
    pub fn file(&self, file: &str) -> Option<&Sibling> {
        self.siblings.iter().find(|s| s.rfilename == file)
    }
}

/// A Hub endpoint with its credentials and offline switch.
#[derive(Clone)]
pub struct Hub {
    /// Base URL, without a trailing `/`.
    pub endpoint: String,
    /// Bearer token for gated or private repos.
    pub token: Option<String>,
    /// Refuse every request (nothing is contacted).
    pub offline: bool,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Hub")
            .field("endpoint", &self.endpoint)
            .field("offline", &self.offline)
            .finish()
    }
}

/// A revision as one URL path segment (`refs/pr/1` -> `refs%2Fpr%2F1`).
fn segment(revision: &str) -> String {
    revision.replace('%', "%25").replace('/', "%2F")
}

impl Hub {
    /// `endpoint` with `token`; not offline.
    pub fn new(endpoint: impl Into<String>, token: Option<String>) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(15))
            // A stalled transfer fails (and is retried from where it stopped) rather than
            // hanging the download forever.
            .timeout_read(Duration::from_secs(60))
            .try_proxy_from_env(true)
            .user_agent(concat!("ttpo/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            token,
            offline: false,
            agent,
        }
    }

    /// The Hub the environment names: `HF_ENDPOINT`, `HF_TOKEN` (or the token file),
    /// `HF_HUB_OFFLINE`.
    pub fn from_env() -> Self {
        let mut hub = Self::new(endpoint_from_env(), token_from_env());
        hub.offline = offline_from_env();
        hub
    }

    pub(crate) fn error(&self, action: &str, repo: &str, e: ureq::Error) -> Error {
        let status = match &e {
            ureq::Error::Status(code, _) => Some(*code),
            ureq::Error::Transport(_) => None,
        };
        self.failure(action, repo, status, e.to_string())
    }

    pub(crate) fn failure(
        &self,
        action: &str,
        repo: &str,
        status: Option<u16>,
        detail: String,
    ) -> Error {
        let detail = detail
            .split('\n')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        Error::Hub {
            action: action.into(),
            repo: repo.into(),
            endpoint: self.endpoint.clone(),
            status,
            detail,
        }
    }

    fn offline_error(&self, repo: &str, revision: &str) -> Error {
        Error::Offline {
            repo: repo.into(),
            revision: revision.into(),
        }
    }

    /// A GET of `url`, from byte `from` on when non-zero. (ureq's own error, large, is
    /// matched on by the caller right away.)
    #[allow(clippy::result_large_err)]
    pub(crate) fn get(&self, url: &str, from: u64) -> Result<ureq::Response, ureq::Error> {
        let mut req = self.agent.get(url);
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        if from > 0 {
            req = req.set("Range", &format!("bytes={from}-"));
        }
        req.call()
    }

    /// The URL of `file` of `repo` at `revision`.
    pub fn file_url(&self, repo: &str, revision: &str, file: &str) -> String {
        format!(
            "{}/{repo}/resolve/{}/{file}",
            self.endpoint,
            segment(revision)
        )
    }

    /// The repo's files at `revision`, with sizes and hashes.
    pub fn listing(&self, repo: &str, revision: &str) -> Result<Listing> {
        if self.offline {
            return Err(self.offline_error(repo, revision));
        }
        let url = format!(
            "{}/api/models/{repo}/revision/{}?blobs=true",
            self.endpoint,
            segment(revision)
        );
        let resp = self
            .get(&url, 0)
            .map_err(|e| self.error("cannot list", repo, e))?;
        let mut body = String::new();
        resp.into_reader()
            .take(64 << 20)
            .read_to_string(&mut body)
            .map_err(|e| self.failure("cannot list", repo, None, e.to_string()))?;
        let listing: Listing = serde_json::from_str(&body)
            .map_err(|e| self.failure("unexpected listing for", repo, Some(200), e.to_string()))?;
        if !crate::cache::is_commit(&listing.sha) {
            return Err(self.failure(
                "unexpected listing for",
                repo,
                Some(200),
                format!("{:?} is not a commit hash", listing.sha),
            ));
        }
        Ok(listing)
    }
}
