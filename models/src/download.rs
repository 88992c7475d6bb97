//! Downloading a model into the Hugging Face cache, resumable, with progress and cancel.
//!
//! Layout (as `huggingface_hub` writes it, so Python and TTPO share downloads): each file's
//! bytes go to `blobs/<name>` (`<name>` = the LFS SHA-256 or the git blob id from the
//! listing), first as `blobs/<name>.part`; `snapshots/<commit>/<file>` is a relative link
//! to the blob; `refs/<branch>` holds the commit. An interrupted or cancelled download
//! leaves the `.part` file, and the next one asks for the rest with a `Range` request.
//! All files come from the commit the listing named, so a branch that moves meanwhile
//! cannot mix two versions.

use crate::cache::{is_commit, repo_folder, snapshot_dir};
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::layout::{index_shards, select_files, Family};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What to download.
#[derive(Clone, Debug)]
pub struct Request {
    /// Repo id.
    pub repo: String,
    /// Branch, tag or commit.
    pub revision: String,
    /// Prefer the `.fp16` weight files where the repo has them (half the bytes).
    pub fp16: bool,
    /// Fetch every file again, even complete ones.
    pub force: bool,
    /// Exactly these files (repo paths) instead of a diffusers model's: for repos that are
    /// not diffusion models, e.g. pyiqa's checkpoints for the learned metrics.
    pub files: Option<Vec<String>>,
}

impl Request {
    /// `repo` at `revision`, `.fp16` weights preferred, complete files kept.
    pub fn new(repo: impl Into<String>, revision: impl Into<String>) -> Self {
        Self {
            repo: repo.into(),
            revision: revision.into(),
            fp16: true,
            force: false,
            files: None,
        }
    }
}

/// One progress report.
#[derive(Clone, Copy, Debug)]
pub struct Transfer<'a> {
    /// The file being fetched (path in the repo).
    pub file: &'a str,
    /// Bytes of it on disk (a resumed file starts above 0).
    pub file_done: u64,
    /// Its size; 0 when neither the listing nor the server said.
    pub file_total: u64,
    /// Bytes of the whole model on disk, files already cached included.
    pub done: u64,
    /// Bytes of the whole model as far as known (it grows when a sharded weight's index
    /// names its shards).
    pub total: u64,
}

/// Receives download progress, on the downloading thread: for each file fetched, a report
/// when it starts (`file_done` = the bytes already there), one after each chunk written,
/// and one when it is complete (`file_done == file_total`). Files already complete are
/// not reported; their bytes count in `done`.
pub trait Progress {
    /// One report.
    fn update(&mut self, t: &Transfer);
}

impl<F: FnMut(&Transfer)> Progress for F {
    fn update(&mut self, t: &Transfer) {
        self(t)
    }
}

/// Result of a download.
#[derive(Debug)]
pub struct Downloaded {
    /// The snapshot folder (the model folder to load).
    pub dir: PathBuf,
    /// The commit downloaded.
    pub commit: String,
    /// Every file: path in the repo, size, and whether it was fetched (false: it was
    /// already complete in the cache).
    pub files: Vec<(String, u64, bool)>,
}

const CHUNK: usize = 64 << 10;
/// Attempts per file when the connection drops mid-transfer (each resumes).
const ATTEMPTS: u32 = 3;

fn file_len(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

/// Removes a cached file: the snapshot link and the blob it points to.
fn forget(path: &Path) {
    if let Ok(target) = std::fs::canonicalize(path) {
        let _ = std::fs::remove_file(&target);
    }
    let _ = std::fs::remove_file(path);
}

/// A repo path that stays inside the snapshot (a listing or an index naming `../x` or an
/// absolute path is refused).
fn safe_relative(file: &str) -> bool {
    !file.is_empty()
        && Path::new(file)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn check_cancel(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    Ok(())
}

/// Links `snapshots/<commit>/<file>` to `blobs/<name>` (relative, as huggingface_hub does;
/// a copy where links are not available).
fn link(blob: &Path, local: &Path, file: &str) -> Result<()> {
    let parent = local.parent().expect("a snapshot file has a folder");
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let _ = std::fs::remove_file(local);
    #[cfg(unix)]
    {
        // snapshots/<commit>/<file>: up one per component of `file` and one for the commit.
        let ups = Path::new(file).components().count() + 1;
        let mut target = PathBuf::new();
        for _ in 0..ups {
            target.push("..");
        }
        target.push("blobs");
        target.push(blob.file_name().expect("blob name"));
        if std::os::unix::fs::symlink(&target, local).is_ok() {
            return Ok(());
        }
    }
    std::fs::copy(blob, local)
        .map(|_| ())
        .map_err(|e| Error::io(local, e))
}

/// The state of one download, for the progress reports.
struct Counter<'a> {
    progress: &'a mut dyn Progress,
    cancel: &'a AtomicBool,
    done: u64,
    total: u64,
}

impl Counter<'_> {
    fn report(&mut self, file: &str, file_done: u64, file_total: u64) {
        self.progress.update(&Transfer {
            file,
            file_done,
            file_total,
            done: self.done + file_done,
            total: self.total,
        });
    }
}

/// Fetches `file` into `blobs/<name>` (resuming `blobs/<name>.part`) and returns the blob.
fn fetch(
    hub: &Hub,
    req: &Request,
    commit: &str,
    file: &str,
    blob_name: &str,
    expected: Option<u64>,
    c: &mut Counter,
) -> Result<PathBuf> {
    let blobs = repo_folder(&req.repo).join("blobs");
    std::fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
    let blob = blobs.join(blob_name);
    let part = blobs.join(format!("{blob_name}.part"));
    let url = hub.file_url(&req.repo, commit, file);
    let action = format!("cannot download {file} of");
    let mut attempt = 0;
    loop {
        check_cancel(c.cancel)?;
        attempt += 1;
        let mut have = file_len(&part).unwrap_or(0);
        if expected.is_some_and(|e| have > e) {
            have = 0;
        }
        let resp = match hub.get(&url, have) {
            Ok(r) => r,
            // The part is already whole (a range from its end is not satisfiable).
            Err(ureq::Error::Status(416, _)) if have > 0 && Some(have) == expected => {
                c.report(file, have, have);
                break;
            }
            Err(ureq::Error::Status(416, _)) if have > 0 => {
                let _ = std::fs::remove_file(&part);
                continue;
            }
            Err(ureq::Error::Transport(_)) if attempt < ATTEMPTS => {
                pause(attempt, c.cancel)?;
                continue;
            }
            Err(e) => return Err(hub.error(&action, &req.repo, e)),
        };
        // 206: the rest follows; 200: the server sent everything (no range support).
        let append = have > 0 && resp.status() == 206;
        let start = if append { have } else { 0 };
        let total = expected
            .or_else(|| {
                resp.header("Content-Length")
                    .and_then(|l| l.parse::<u64>().ok())
                    .map(|l| l + start)
            })
            .unwrap_or(0);
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&part)
            .map_err(|e| Error::io(&part, e))?;
        let mut got = start;
        c.report(file, got, total);
        let mut reader = resp.into_reader();
        let mut buf = vec![0u8; CHUNK];
        let dropped = loop {
            check_cancel(c.cancel)?;
            let n = match reader.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(e),
            };
            out.write_all(&buf[..n]).map_err(|e| Error::io(&part, e))?;
            got += n as u64;
            c.report(file, got, total.max(got));
        };
        out.flush().map_err(|e| Error::io(&part, e))?;
        drop(out);
        match dropped {
            None if expected.is_none_or(|e| e == got) => break,
            None => {
                let e = expected.unwrap_or(0);
                if got > e {
                    let _ = std::fs::remove_file(&part);
                }
                if got > e || attempt >= ATTEMPTS {
                    return Err(Error::Invalid {
                        path: part,
                        message: format!(
                            "downloaded {file} of {} has {got} bytes but the Hub lists {e}; run the download again",
                            req.repo
                        ),
                    });
                }
            }
            Some(e) if attempt >= ATTEMPTS => {
                return Err(hub.failure(&action, &req.repo, None, e.to_string()))
            }
            Some(_) => {}
        }
        pause(attempt, c.cancel)?;
    }
    std::fs::rename(&part, &blob).map_err(|e| Error::io(&blob, e))?;
    Ok(blob)
}

/// Waits before retry `attempt`, watching the cancel flag.
fn pause(attempt: u32, cancel: &AtomicBool) -> Result<()> {
    for _ in 0..attempt * 10 {
        check_cancel(cancel)?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Downloads (or completes) the model in the cache: `model_index.json`, then the files
/// [`select_files`] picks for the family it names (and the shards of sharded weights).
/// Complete files are kept; interrupted ones resume. Each file's size is checked against
/// the listing. `cancel` is checked between chunks (and
/// files); a cancelled download returns [`Error::Cancelled`] and resumes next time.
pub fn download(
    hub: &Hub,
    req: &Request,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<Downloaded> {
    check_cancel(cancel)?;
    let listing = &hub.listing(&req.repo, &req.revision)?;
    let snap = repo_folder(&req.repo).join("snapshots").join(&listing.sha);
    // The family guessed from the file names gives the total up front; model_index.json
    // (fetched first) has the final word, and the queue follows it if the guess was wrong.
    let guess = Family::of_listing(listing);
    let mut queue = match &req.files {
        Some(files) => files.clone(),
        None => select_files(listing, req.fp16, guess),
    };
    let size_of = |f: &str| listing.file(f).and_then(|s| s.expected_size()).unwrap_or(0);
    let mut c = Counter {
        progress,
        cancel,
        done: 0,
        total: queue.iter().map(|f| size_of(f)).sum(),
    };
    let mut files = Vec::new();
    let mut i = 0;
    while i < queue.len() {
        check_cancel(cancel)?;
        let file = queue[i].clone();
        i += 1;
        let Some(sib) = listing.file(&file).filter(|_| safe_relative(&file)) else {
            if req.files.is_some() {
                return Err(Error::NotInRepo {
                    repo: req.repo.clone(),
                    revision: req.revision.clone(),
                    file,
                });
            }
            return Err(Error::NotDiffusers {
                repo: req.repo.clone(),
                revision: req.revision.clone(),
                file,
            });
        };
        let expected = sib.expected_size();
        let local = snap.join(&file);
        if req.force {
            forget(&local);
        }
        let have = file_len(&local);
        let fresh = match (have, expected) {
            (Some(h), Some(e)) => h == e,
            (Some(_), None) => true,
            _ => false,
        };
        if !fresh {
            if have.is_some() {
                forget(&local);
            }
            // Without a name from the listing the blob is named after the commit and file
            // (still resumable; such endpoints are not the Hub).
            let name = sib.blob_name().unwrap_or_else(|| {
                use sha2::{Digest, Sha256};
                crate::hex(&Sha256::digest(format!("{}/{file}", listing.sha)))
            });
            let blob = fetch(hub, req, &listing.sha, &file, &name, expected, &mut c)?;
            link(&blob, &local, &file)?;
        }
        let got = file_len(&local).unwrap_or(0);
        if let Some(e) = expected.filter(|&e| e != got) {
            forget(&local);
            return Err(Error::Invalid {
                path: local,
                message: format!(
                    "downloaded {file} of {} has {got} bytes but the Hub lists {e}; run the download again",
                    req.repo
                ),
            });
        }
        c.done += got;
        if expected.is_none() {
            c.total += got;
        }
        let family =
            (file == "model_index.json" && req.files.is_none()).then(|| Family::of_dir(&snap));
        if let Some(family) = family.filter(|&f| f != guess) {
            let want = select_files(listing, req.fp16, family);
            let (fetched, pending) = queue.split_at(i);
            let dropped: Vec<String> = pending
                .iter()
                .filter(|f| !want.contains(f))
                .cloned()
                .collect();
            let mut next = fetched.to_vec();
            next.extend(pending.iter().filter(|f| want.contains(f)).cloned());
            for f in want {
                if !next.contains(&f) {
                    c.total += size_of(&f);
                    next.push(f);
                }
            }
            for f in dropped {
                c.total -= size_of(&f);
            }
            queue = next;
        }
        if file.ends_with(".safetensors.index.json") {
            let text = std::fs::read_to_string(&local).map_err(|e| Error::io(&local, e))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Invalid {
                path: local.clone(),
                message: e.to_string(),
            })?;
            for shard in index_shards(&file, &v) {
                if !queue.contains(&shard) {
                    c.total += size_of(&shard);
                    queue.push(shard);
                }
            }
        }
        files.push((file, got, !fresh));
    }
    // A download by commit leaves no branch ref; make the requested revision resolve.
    if !is_commit(&req.revision) && safe_relative(&req.revision) {
        let ref_file = repo_folder(&req.repo).join("refs").join(&req.revision);
        if let Some(parent) = ref_file.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&ref_file, &listing.sha);
    }
    Ok(Downloaded {
        dir: snapshot_dir(&req.repo, &listing.sha).unwrap_or(snap),
        commit: listing.sha.clone(),
        files,
    })
}
