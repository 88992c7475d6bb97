//! The Hugging Face cache: where it is (the same environment rules as the Python tools),
//! how a repo is laid out in it (`models--org--name/{blobs,refs,snapshots}`), finding a
//! model at a revision and listing what is cached. Never touches the network.

use crate::error::{Error, Result};
use crate::layout::{missing_parts, Family};
use std::path::{Path, PathBuf};

/// Where a model comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// An explicit diffusers-layout folder.
    Dir(PathBuf),
    /// A Hub repo at a revision (branch, tag or commit), looked up in the cache.
    Repo {
        /// Repo id, `org/name`.
        repo: String,
        /// Branch, tag or 40-hex commit.
        revision: String,
    },
}

/// `org/name` or `name` of letters, digits, `.`, `_`, `-` (the Hub's rules), not starting
/// with `.` (so `./x` and `../x` are folders).
pub fn is_repo_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

impl Source {
    /// A model named by one string, as a host's settings field holds it: an existing
    /// folder, else a repo id (at `revision`), else a folder (that does not exist, which
    /// [`locate`] reports).
    pub fn from_name(name: &Path, revision: &str) -> Self {
        match name.to_str() {
            Some(s) if !name.is_dir() && is_repo_id(s) => Source::Repo {
                repo: s.to_string(),
                revision: revision.to_string(),
            },
            _ => Source::Dir(name.to_path_buf()),
        }
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(PathBuf::from)
}

/// The Hugging Face home: `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else
/// `~/.cache/huggingface` (the same rules as the Python tools).
pub fn hf_home() -> PathBuf {
    if let Some(h) = std::env::var_os("HF_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("huggingface");
    }
    home()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
        .join("huggingface")
}

/// The hub cache: `HF_HUB_CACHE` (or the older `HUGGINGFACE_HUB_CACHE`), else
/// `<hf_home>/hub`.
pub fn hub_cache_dir() -> PathBuf {
    for var in ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return PathBuf::from(v);
        }
    }
    hf_home().join("hub")
}

/// The cache folder of a model repo.
pub fn repo_folder(repo: &str) -> PathBuf {
    hub_cache_dir().join(format!("models--{}", repo.replace('/', "--")))
}

/// A full commit hash (a revision that needs no ref).
pub fn is_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The cached snapshot folder of `repo` at `revision`, if the revision is known locally.
pub fn snapshot_dir(repo: &str, revision: &str) -> Option<PathBuf> {
    let folder = repo_folder(repo);
    let commit = if is_commit(revision) {
        revision.to_string()
    } else {
        std::fs::read_to_string(folder.join("refs").join(revision))
            .ok()?
            .trim()
            .to_string()
    };
    // A ref file holding something else than a commit must not walk out of the cache.
    if !is_commit(&commit) {
        return None;
    }
    let dir = folder.join("snapshots").join(commit);
    dir.is_dir().then_some(dir)
}

/// The local folder of a model, complete for the engine, without any network access: an
/// explicit folder that exists (its completeness is the engine's to report), or the cached
/// snapshot of a repo when it has every part ([`Error::NotCached`] otherwise, saying what
/// is missing).
pub fn locate(source: &Source) -> Result<PathBuf> {
    match source {
        Source::Dir(dir) if dir.is_dir() => Ok(dir.clone()),
        Source::Dir(dir) => Err(Error::FolderMissing(dir.clone())),
        Source::Repo { repo, revision } => {
            let missing = match snapshot_dir(repo, revision) {
                Some(dir) => {
                    let missing = missing_parts(&dir);
                    if missing.is_empty() {
                        return Ok(dir);
                    }
                    missing
                }
                None => Vec::new(),
            };
            Err(Error::NotCached {
                repo: repo.clone(),
                revision: revision.clone(),
                cache: hub_cache_dir(),
                missing,
            })
        }
    }
}

/// One cached repo at one of its refs.
#[derive(Debug, serde::Serialize)]
pub struct CachedModel {
    /// Repo id.
    pub repo: String,
    /// The ref (branch or tag), or the commit when the repo has no refs.
    pub revision: String,
    /// The commit the ref points at.
    pub commit: String,
    /// The snapshot folder.
    pub path: PathBuf,
    /// The model family, from its `model_index.json` ([`Family::label`]).
    pub family: &'static str,
    /// Whether the snapshot has every part the engine needs.
    pub complete: bool,
    /// What it lacks.
    pub missing: Vec<String>,
    /// Bytes of the repo's blobs (all revisions together).
    pub bytes: u64,
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                total += dir_size(&p);
            } else if let Ok(m) = std::fs::metadata(&p) {
                total += m.len();
            }
        }
    }
    total
}

/// Every model repo in the hub cache with each of its refs.
pub fn list_cached() -> Vec<CachedModel> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(hub_cache_dir()) else {
        return out;
    };
    let mut folders: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("models--"))
        })
        .collect();
    folders.sort();
    for folder in folders {
        let name = folder.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let repo = name["models--".len()..].replace("--", "/");
        let mut refs: Vec<(String, String)> = Vec::new();
        collect_refs(&folder.join("refs"), "", &mut refs);
        if refs.is_empty() {
            if let Ok(rd) = std::fs::read_dir(folder.join("snapshots")) {
                for e in rd.flatten() {
                    let c = e.file_name().to_string_lossy().into_owned();
                    refs.push((c.clone(), c));
                }
            }
        }
        refs.sort();
        let bytes = dir_size(&folder.join("blobs"));
        for (revision, commit) in refs {
            let path = folder.join("snapshots").join(&commit);
            let missing = missing_parts(&path);
            out.push(CachedModel {
                repo: repo.clone(),
                revision,
                commit,
                family: Family::of_dir(&path).label(),
                path,
                complete: missing.is_empty(),
                missing,
                bytes,
            });
        }
    }
    out
}

fn collect_refs(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        let p = e.path();
        if p.is_dir() {
            collect_refs(&p, &format!("{name}/"), out);
        } else if let Ok(c) = std::fs::read_to_string(&p) {
            out.push((name, c.trim().to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_and_folders_are_told_apart() {
        for id in [
            "org/name",
            "name",
            "stabilityai/stable-diffusion-2-1-base",
            "a-b/c_d.e",
        ] {
            assert!(is_repo_id(id), "{id}");
        }
        for not in [
            "",
            "/abs/path",
            "./x",
            "../x",
            "a/b/c",
            "a//b",
            "a/.b",
            "a b/c",
            "~/x",
        ] {
            assert!(!is_repo_id(not), "{not}");
        }
        let dir = std::env::temp_dir();
        assert_eq!(Source::from_name(&dir, "main"), Source::Dir(dir.clone()));
        assert_eq!(
            Source::from_name(Path::new("org/name"), "v1"),
            Source::Repo {
                repo: "org/name".into(),
                revision: "v1".into()
            }
        );
        assert_eq!(
            Source::from_name(Path::new("./org/name"), "main"),
            Source::Dir("./org/name".into())
        );
    }
}
