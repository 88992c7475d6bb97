//! Verifying a model folder: every part present, every `*.safetensors` structurally sound,
//! every `*.json` parsing, sizes equal to the Hub's listing, and optionally each weight's
//! SHA-256 equal to its LFS hash.

use crate::error::{Error, Result};
use crate::hub::Listing;
use crate::layout::{check_safetensors, missing_parts};
use std::io::Read;
use std::path::Path;

/// What [`verify`] found.
#[derive(Debug, Default)]
pub struct Report {
    /// Files that passed, relative paths with `/`.
    pub checked: Vec<String>,
    /// `(file or part, problem)`; a missing part's problem is `"missing"`.
    pub problems: Vec<(String, String)>,
}

impl Report {
    /// No problem found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
    /// Every problem is a missing part (nothing present is corrupt).
    pub fn only_missing(&self) -> bool {
        self.problems.iter().all(|(_, p)| p == "missing")
    }
}

/// Files under `dir` (following links), relative paths with `/`, sorted.
pub fn walk(dir: &Path) -> Vec<String> {
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    go(base, &p, out);
                } else if let Ok(r) = p.strip_prefix(base) {
                    out.push(r.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    let mut out = Vec::new();
    go(dir, dir, &mut out);
    out.sort();
    out
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::hex(&h.finalize()))
}

/// The blob a cache link points to, when its name is a SHA-256 (LFS blobs are named so).
fn blob_sha256(path: &Path) -> Option<String> {
    std::fs::canonicalize(path).ok().and_then(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(String::from)
    })
}

fn check_file(
    path: &Path,
    rel: &str,
    listing: Option<&Listing>,
    sha256: bool,
) -> Result<Option<String>> {
    if rel.ends_with(".safetensors") {
        if let Err(e) = check_safetensors(path) {
            return Ok(Some(e));
        }
    } else if rel.ends_with(".json") {
        let ok = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some();
        if !ok {
            return Ok(Some("not valid JSON".into()));
        }
    }
    let sib = listing.and_then(|l| l.file(rel));
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if let Some(w) = sib.and_then(|s| s.expected_size()).filter(|&w| w != len) {
        return Ok(Some(format!("{len} bytes, the Hub lists {w}")));
    }
    if sha256 && rel.ends_with(".safetensors") {
        // The Hub's LFS SHA-256, or the cache blob's name (which is that hash).
        let want = sib
            .and_then(|s| s.lfs.as_ref().and_then(|l| l.sha256.clone()))
            .or_else(|| blob_sha256(path));
        if let Some(w) = want {
            let got = sha256_file(path).map_err(|e| Error::io(path, e))?;
            if got != w {
                return Ok(Some(format!("SHA-256 {got} differs from {w}")));
            }
        }
    }
    Ok(None)
}

/// Checks the folder `dir`, against `listing` when given (sizes, LFS hashes). `sha256`
/// hashes the weights (minutes for gigabytes).
pub fn verify(dir: &Path, listing: Option<&Listing>, sha256: bool) -> Result<Report> {
    let mut report = Report {
        problems: missing_parts(dir)
            .into_iter()
            .map(|m| (m, "missing".to_string()))
            .collect(),
        ..Default::default()
    };
    for rel in walk(dir) {
        match check_file(&dir.join(&rel), &rel, listing, sha256)? {
            Some(p) => report.problems.push((rel, p)),
            None => report.checked.push(rel),
        }
    }
    Ok(report)
}
