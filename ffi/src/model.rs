//! Model resolution for hosts without a terminal (GIMP, OpenFX): find a model's local folder
//! (an explicit folder or a Hub repo in the shared Hugging Face cache) and download a repo
//! into that cache with progress and cancel. The work is the `ttpo-models` crate's, the same
//! the `ttpo` CLI uses; this module only translates.
//!
//! `ttpo_model_resolve` never touches the network: a GUI host downloads explicitly, with a
//! progress bar and a Cancel button, through a `ttpo_model_download` handle. Its callbacks
//! run on the thread that called `ttpo_model_download_run`; `ttpo_model_download_cancel`
//! may be called from any thread. A cancel is final for the handle (there is no later call
//! it could be meant for); a new handle resumes the download where it stopped.

use crate::job::{ttpo_cancel_fn, Exclusive};
use crate::panic::{guard, test_hook};
use crate::status::{
    Failure, FfiResult, LastError, TTPO_STATUS_CANCELLED, TTPO_STATUS_INVALID_STATE,
    TTPO_STATUS_IO, TTPO_STATUS_MODEL_INVALID, TTPO_STATUS_MODEL_NOT_FOUND, TTPO_STATUS_NETWORK,
};
use parking_lot::Mutex;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use ttpo_models::{Error, Hub, Request, Source, Transfer};

/// Download progress: `file` (a repo path, valid during the call) has `file_done` of
/// `file_total` bytes on disk (`file_total` 0 = unknown); the whole model `done` of `total`
/// (`total` grows when a sharded weight names its shards). Called when a file starts (a
/// resumed file starts above 0), after every chunk, and when it is complete.
pub type ttpo_model_download_progress_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        file: *const c_char,
        file_done: u64,
        file_total: u64,
        done: u64,
        total: u64,
    ),
>;

/// The default model's Hub repo id ("stabilityai/stable-diffusion-2-1-base"; static string).
#[no_mangle]
pub extern "C" fn ttpo_model_default_repo() -> *const c_char {
    const REPO: &CStr = c"stabilityai/stable-diffusion-2-1-base";
    // The C string and the crate's constant are one fact (a unit test compares them).
    REPO.as_ptr()
}

/// A NUL-terminated C string as a path (bytes on Unix); None for NULL or "".
unsafe fn opt_path(s: *const c_char, what: &str) -> FfiResult<Option<PathBuf>> {
    if s.is_null() {
        return Ok(None);
    }
    let bytes = CStr::from_ptr(s).to_bytes();
    if bytes.is_empty() {
        return Ok(None);
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let _ = what;
        Ok(Some(std::ffi::OsStr::from_bytes(bytes).into()))
    }
    #[cfg(not(unix))]
    std::str::from_utf8(bytes)
        .map(|s| Some(s.into()))
        .map_err(|_| Failure::arg(format!("{what} is not valid UTF-8")))
}

/// A revision argument: NULL or "" = "main"; UTF-8.
unsafe fn revision(s: *const c_char) -> FfiResult<String> {
    if s.is_null() || *s == 0 {
        return Ok(ttpo_models::DEFAULT_REVISION.into());
    }
    CStr::from_ptr(s)
        .to_str()
        .map(String::from)
        .map_err(|_| Failure::arg("revision is not valid UTF-8"))
}

/// The status and message for a `ttpo_models` error, naming what a host can do.
fn failure(e: Error) -> Failure {
    let status = match &e {
        Error::Hub { .. } if e.is_network() => TTPO_STATUS_NETWORK,
        Error::Invalid { .. } => TTPO_STATUS_MODEL_INVALID,
        Error::Cancelled => TTPO_STATUS_CANCELLED,
        Error::Io { .. } => TTPO_STATUS_IO,
        _ => TTPO_STATUS_MODEL_NOT_FOUND,
    };
    let message = match &e {
        Error::NotCached { repo, .. } if ttpo_models::hub::offline_from_env() => format!(
            "{e}; offline mode is on (HF_HUB_OFFLINE), so it cannot be downloaded here: copy the cache from a machine that has it (`ttpo models download {repo}`) or choose a model folder"
        ),
        Error::NotCached { repo, .. } => format!(
            "{e}; download it (ttpo_model_download_run, or `ttpo models download {repo}`) or choose a model folder"
        ),
        Error::Offline { .. } => {
            format!("{e}; unset HF_HUB_OFFLINE, or choose a model folder")
        }
        _ => e.to_string(),
    };
    Failure::new(status, message)
}

/// Writes `path` as a NUL-terminated string into `out` (`capacity` bytes). `*length_out`
/// receives its length without the NUL, also when `capacity` is too small (then nothing is
/// written to `out` and the status is `TTPO_STATUS_INVALID_ARGUMENT`).
unsafe fn write_path(
    path: &Path,
    out: *mut c_char,
    capacity: usize,
    length_out: *mut usize,
) -> FfiResult {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes()
    };
    #[cfg(not(unix))]
    let bytes = path
        .to_str()
        .ok_or_else(|| Failure::arg("the model path is not valid UTF-8"))?
        .as_bytes();
    if let Some(l) = length_out.as_mut() {
        *l = bytes.len();
    }
    if out.is_null() {
        return Ok(());
    }
    if capacity <= bytes.len() {
        return Err(Failure::arg(format!(
            "path_out has {capacity} bytes; the path needs {} (with its NUL)",
            bytes.len() + 1
        )));
    }
    std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.cast::<u8>(), bytes.len());
    *out.add(bytes.len()) = 0;
    Ok(())
}

/// Either output pointer may be NULL, not both (`path_out` NULL: a size query).
fn check_outputs(out: *mut c_char, length_out: *mut usize) -> FfiResult {
    if out.is_null() && length_out.is_null() {
        return Err(Failure::null("path_out and length_out"));
    }
    Ok(())
}

/// The local folder of a model, without any network access. `model`: an existing folder,
/// else a Hub repo id (`org/name`) looked up in the Hugging Face cache (`HF_HUB_CACHE`, else
/// `HF_HOME/hub`, else `~/.cache/huggingface/hub`) at `revision` (NULL or "" = "main"); NULL
/// or "" = the folder `TTPO_MODEL_DIR` names if set, else `ttpo_model_default_repo()`.
///
/// On success the folder (complete for the engine when it is a repo; an explicit folder is
/// only checked to exist — `ttpo_engine_new` reports what it lacks) is written to
/// `path_out` (`capacity` bytes, NUL-terminated) and its length without the NUL to
/// `*length_out`. `path_out` NULL asks for the length only. A `capacity` too small returns
/// `TTPO_STATUS_INVALID_ARGUMENT` with `*length_out` set and `path_out` untouched.
/// `length_out` may be NULL when `path_out` is not.
///
/// A repo not (completely) cached returns `TTPO_STATUS_MODEL_NOT_FOUND` with a message
/// saying what is missing and how to download it (`ttpo_last_error()`).
///
/// # Safety
/// Strings must be NULL or NUL-terminated; `path_out` must hold `capacity` bytes.
#[no_mangle]
pub unsafe extern "C" fn ttpo_model_resolve(
    model: *const c_char,
    revision: *const c_char,
    path_out: *mut c_char,
    capacity: usize,
    length_out: *mut usize,
) -> u32 {
    guard(None, || {
        check_outputs(path_out, length_out)?;
        let source = source_of(model, revision)?;
        test_hook("model_resolve");
        let dir = ttpo_models::locate(&source).map_err(failure)?;
        write_path(&dir, path_out, capacity, length_out)
    })
}

/// What `model` and `revision` name, by the rules of `ttpo_model_resolve`.
unsafe fn source_of(model: *const c_char, revision: *const c_char) -> FfiResult<Source> {
    let rev = self::revision(revision)?;
    Ok(match opt_path(model, "model")? {
        Some(name) => Source::from_name(&name, &rev),
        None => match std::env::var_os("TTPO_MODEL_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => Source::Dir(dir.into()),
            None => Source::Repo {
                repo: ttpo_models::DEFAULT_REPO.into(),
                revision: rev,
            },
        },
    })
}

/// `ttpo_model_verify` flag: also hash every weight file and compare it with its LFS
/// SHA-256 (from the Hub's listing with `TTPO_MODEL_VERIFY_ONLINE`, else the cache blob's
/// name, which is that hash). Reads every byte: minutes for a full model.
pub const TTPO_MODEL_VERIFY_SHA256: u32 = 1;
/// `ttpo_model_verify` flag: compare every file's size (and hash) with the Hub's listing
/// of the repo (network; a Hub repo only).
pub const TTPO_MODEL_VERIFY_ONLINE: u32 = 2;

/// Checks a model on this machine, as `ttpo models verify` does: every part the engine
/// needs present, every `*.safetensors` structurally sound (header, offsets, sizes), every
/// `*.json` parsing; with the flags above, sizes against the Hub and SHA-256 hashes.
/// `model` and `revision` name it as for `ttpo_model_resolve` (a folder, a cached Hub repo,
/// NULL = the default).
///
/// `TTPO_STATUS_OK` when all is well. Otherwise `ttpo_last_error()` lists the problems
/// (`file: problem; ...`) and the status says which kind: `TTPO_STATUS_MODEL_INVALID` when a
/// present file is bad (fetch it again), `TTPO_STATUS_MODEL_NOT_FOUND` when parts are only
/// missing or the model is not on this machine, `TTPO_STATUS_NETWORK` when the Hub could not
/// be asked (ONLINE), `TTPO_STATUS_INVALID_ARGUMENT` for unknown flags.
///
/// # Safety
/// Strings must be NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn ttpo_model_verify(
    model: *const c_char,
    revision: *const c_char,
    flags: u32,
) -> u32 {
    guard(None, || {
        let known = TTPO_MODEL_VERIFY_SHA256 | TTPO_MODEL_VERIFY_ONLINE;
        if flags & !known != 0 {
            return Err(Failure::arg(format!(
                "unknown flags {:#x} (known: TTPO_MODEL_VERIFY_SHA256, TTPO_MODEL_VERIFY_ONLINE)",
                flags & !known
            )));
        }
        let source = source_of(model, revision)?;
        let dir = ttpo_models::locate(&source).map_err(failure)?;
        let listing = match (&source, flags & TTPO_MODEL_VERIFY_ONLINE != 0) {
            (Source::Repo { repo, revision }, true) => {
                Some(Hub::from_env().listing(repo, revision).map_err(failure)?)
            }
            (_, true) => {
                return Err(Failure::arg(
                    "TTPO_MODEL_VERIFY_ONLINE needs a Hub repo id, not a folder",
                ))
            }
            _ => None,
        };
        let sha256 = flags & TTPO_MODEL_VERIFY_SHA256 != 0;
        let report =
            ttpo_models::verify::verify(&dir, listing.as_ref(), sha256).map_err(failure)?;
        if report.ok() {
            return Ok(());
        }
        let status = if report.only_missing() {
            TTPO_STATUS_MODEL_NOT_FOUND
        } else {
            TTPO_STATUS_MODEL_INVALID
        };
        let list: Vec<String> = report
            .problems
            .iter()
            .map(|(f, p)| format!("{f}: {p}"))
            .collect();
        Err(Failure::new(
            status,
            format!("{}: {}", dir.display(), list.join("; ")),
        ))
    })
}

#[derive(Clone, Copy)]
struct UserData(*mut c_void);
// SAFETY: handed back only to the caller's callbacks, on the thread of the run call.
unsafe impl Send for UserData {}

#[derive(Clone, Copy, Default)]
struct Callbacks {
    progress: Option<(
        unsafe extern "C" fn(*mut c_void, *const c_char, u64, u64, u64, u64),
        UserData,
    )>,
    cancel: Option<(unsafe extern "C" fn(*mut c_void) -> i32, UserData)>,
}

/// A download of one Hub repo into the Hugging Face cache (opaque).
pub struct ttpo_model_download {
    request: Request,
    cancel: AtomicBool,
    running: AtomicBool,
    callbacks: Mutex<Callbacks>,
    last_error: LastError,
}

fn busy() -> Failure {
    Failure::new(
        TTPO_STATUS_INVALID_STATE,
        "the download is running (only ttpo_model_download_cancel may be called meanwhile)",
    )
}

unsafe fn on_download(
    d: *const ttpo_model_download,
    f: impl FnOnce(&ttpo_model_download) -> FfiResult,
) -> u32 {
    let Some(d) = d.as_ref() else {
        return guard(None, || Err(Failure::null("download")));
    };
    guard(Some(&d.last_error), || f(d))
}

/// Prepares a download of the Hub repo `repo` (NULL or "" = `ttpo_model_default_repo()`)
/// at `revision` (NULL or "" = "main"): the files the engine needs (`.fp16` weights where
/// the repo has them) into the Hugging Face cache, where `ttpo_model_resolve` and the
/// `ttpo` CLI find them. Nothing is contacted yet. Free with `ttpo_model_download_free`.
///
/// # Safety
/// Strings must be NULL or NUL-terminated; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn ttpo_model_download_new(
    repo: *const c_char,
    revision: *const c_char,
    out: *mut *mut ttpo_model_download,
) -> u32 {
    guard(None, || {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let repo = if repo.is_null() || *repo == 0 {
            ttpo_models::DEFAULT_REPO.to_string()
        } else {
            let s = CStr::from_ptr(repo)
                .to_str()
                .map_err(|_| Failure::arg("repo is not valid UTF-8"))?;
            if !ttpo_models::cache::is_repo_id(s) {
                return Err(Failure::arg(format!(
                    "{s:?} is not a Hub repo id (org/name)"
                )));
            }
            s.to_string()
        };
        let request = Request::new(repo, self::revision(revision)?);
        *out = Box::into_raw(Box::new(ttpo_model_download {
            request,
            cancel: AtomicBool::new(false),
            running: AtomicBool::new(false),
            callbacks: Mutex::new(Callbacks::default()),
            last_error: LastError::default(),
        }));
        Ok(())
    })
}

/// Frees a download (NULL is ignored). It must not be running.
///
/// # Safety
/// `download` must come from `ttpo_model_download_new` and not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn ttpo_model_download_free(download: *mut ttpo_model_download) {
    if !download.is_null() {
        crate::panic::guard_value((), || drop(Box::from_raw(download)));
    }
}

/// The latest error message of calls on this download ("" if none; NULL for a NULL
/// handle); this thread's copy, valid until this thread reads it again or frees the handle.
///
/// # Safety
/// `download` must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn ttpo_model_download_last_error(
    download: *const ttpo_model_download,
) -> *const c_char {
    match download.as_ref() {
        Some(d) => d.last_error.ptr(),
        None => std::ptr::null(),
    }
}

/// Sets the progress callback (NULL removes it). Refused while the download runs.
///
/// # Safety
/// `download` must be NULL or valid; `user_data` is passed back untouched.
#[no_mangle]
pub unsafe extern "C" fn ttpo_model_download_set_progress_callback(
    download: *mut ttpo_model_download,
    callback: ttpo_model_download_progress_fn,
    user_data: *mut c_void,
) -> u32 {
    on_download(download, |d| {
        if d.running.load(Ordering::Acquire) {
            return Err(busy());
        }
        d.callbacks.lock().progress = callback.map(|f| (f, UserData(user_data)));
        Ok(())
    })
}

/// Sets the cancel poll callback (non-zero stops the download), polled with every progress
/// report (NULL removes it). Refused while the download runs.
///
/// # Safety
/// As `ttpo_model_download_set_progress_callback`.
#[no_mangle]
pub unsafe extern "C" fn ttpo_model_download_set_cancel_callback(
    download: *mut ttpo_model_download,
    callback: ttpo_cancel_fn,
    user_data: *mut c_void,
) -> u32 {
    on_download(download, |d| {
        if d.running.load(Ordering::Acquire) {
            return Err(busy());
        }
        d.callbacks.lock().cancel = callback.map(|f| (f, UserData(user_data)));
        Ok(())
    })
}

/// Stops the download: a running `ttpo_model_download_run` returns `TTPO_STATUS_CANCELLED`
/// after the chunk it is writing (the partial file is kept, and a new handle resumes it);
/// a later run on this handle returns it at once. Callable from any thread, also from the
/// callbacks.
///
/// # Safety
/// `download` must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn ttpo_model_download_cancel(download: *const ttpo_model_download) -> u32 {
    guard(None, || {
        let d = download.as_ref().ok_or_else(|| Failure::null("download"))?;
        d.cancel.store(true, Ordering::Release);
        Ok(())
    })
}

/// Runs the download; blocks until it is complete, fails or is cancelled (seconds to many
/// minutes: call it off the UI thread). Files already complete in the cache are kept; an
/// interrupted file resumes. The endpoint, token and offline mode come from `HF_ENDPOINT`,
/// `HF_TOKEN` and `HF_HUB_OFFLINE` (offline: `TTPO_STATUS_MODEL_NOT_FOUND` at once).
///
/// On success the model folder is written like `ttpo_model_resolve` writes it (`path_out`
/// NULL: length only). Failures: `TTPO_STATUS_NETWORK` (no connection, server error),
/// `TTPO_STATUS_MODEL_NOT_FOUND` (unknown repo or revision, gated repo without a token, not
/// a diffusers repo of a family the engine runs: SD 1.x/2.x, SD3/3.5, FLUX.1),
/// `TTPO_STATUS_MODEL_INVALID` (a file's size differs from the listing), `TTPO_STATUS_CANCELLED`, `TTPO_STATUS_IO`; the message is in
/// `ttpo_model_download_last_error()`.
///
/// # Safety
/// `download` must be NULL or valid; `path_out` must hold `capacity` bytes.
#[no_mangle]
pub unsafe extern "C" fn ttpo_model_download_run(
    download: *mut ttpo_model_download,
    path_out: *mut c_char,
    capacity: usize,
    length_out: *mut usize,
) -> u32 {
    on_download(download, |d| {
        check_outputs(path_out, length_out)?;
        if d.running
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(busy());
        }
        let _running = Exclusive(&d.running);
        let cb = *d.callbacks.lock();
        test_hook("model_download_run");
        let mut progress = |t: &Transfer| {
            if let Some((f, ud)) = cb.progress {
                let file = CString::new(t.file.replace('\0', " ")).expect("NULs removed");
                // SAFETY: the caller registered `f` for this user data.
                unsafe {
                    f(
                        ud.0,
                        file.as_ptr(),
                        t.file_done,
                        t.file_total,
                        t.done,
                        t.total,
                    )
                };
            }
            if let Some((f, ud)) = cb.cancel {
                // SAFETY: as above.
                if unsafe { f(ud.0) } != 0 {
                    d.cancel.store(true, Ordering::Release);
                }
            }
        };
        let r = ttpo_models::download(&Hub::from_env(), &d.request, &mut progress, &d.cancel)
            .map_err(failure)?;
        write_path(&r.dir, path_out, capacity, length_out)
    })
}

/// Points `iqa_model_dir` at the Hugging Face cache's copy of pyiqa's checkpoints (what
/// `ttpo models download --metrics` fetched) when the chosen learned metrics are in none of
/// core's default folders and that copy has them all. Never downloads: a host asks for
/// downloads explicitly. Without a copy the options stay as they are, and the job's error
/// names the missing file and how to fetch it.
pub(crate) fn use_cached_iqa(scoring: &mut ttpo::ScoringOptions) {
    let want = ttpo::scoring::learned::to_fetch(scoring);
    if want.is_empty() {
        return;
    }
    let snapshot = ttpo_models::cache::snapshot_dir(
        ttpo::scoring::learned::IQA_REPO,
        ttpo_models::DEFAULT_REVISION,
    );
    if let Some(dir) = snapshot.filter(|d| want.iter().all(|c| d.join(c.file).is_file())) {
        scoring.iqa_model_dir = Some(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{TTPO_STATUS_INVALID_ARGUMENT, TTPO_STATUS_NULL_POINTER, TTPO_STATUS_OK};

    #[test]
    fn the_default_repo_is_the_crates() {
        let s = unsafe { CStr::from_ptr(ttpo_model_default_repo()) };
        assert_eq!(s.to_str().unwrap(), ttpo_models::DEFAULT_REPO);
    }

    #[test]
    fn paths_are_written_whole_or_not_at_all() {
        let p = Path::new("/a/bc");
        let mut buf = [b'x' as c_char; 8];
        let mut len = 0usize;
        unsafe {
            // Exactly the length: no room for the NUL.
            let e = write_path(p, buf.as_mut_ptr(), 5, &mut len).expect_err("too small");
            assert_eq!(e.status, TTPO_STATUS_INVALID_ARGUMENT);
            assert_eq!(len, 5);
            assert!(buf.iter().all(|&c| c == b'x' as c_char));
            assert!(write_path(p, buf.as_mut_ptr(), 6, std::ptr::null_mut()).is_ok());
            assert_eq!(CStr::from_ptr(buf.as_ptr()).to_bytes(), b"/a/bc");
            assert_eq!(buf[6], b'x' as c_char, "nothing past the NUL");
            len = 0;
            assert!(write_path(p, std::ptr::null_mut(), 0, &mut len).is_ok());
            assert_eq!(len, 5);
        }
        let e = check_outputs(std::ptr::null_mut(), std::ptr::null_mut()).expect_err("NULLs");
        assert_eq!(e.status, TTPO_STATUS_NULL_POINTER);
    }

    /// A panic inside a run (forced by the debug-build hook) is a status; the handle is
    /// released (not left "running") and can be freed.
    #[test]
    fn a_panic_in_a_run_is_a_status_and_releases_the_handle() {
        unsafe {
            let mut d = std::ptr::null_mut();
            assert_eq!(
                ttpo_model_download_new(c"a/b".as_ptr(), std::ptr::null(), &mut d),
                TTPO_STATUS_OK as u32
            );
            let env = crate::panic::TEST_HOOK_ENV.lock();
            std::env::set_var("TTPO_TEST_FORCE_PANIC", "model_download_run");
            let mut len = 0usize;
            let st = ttpo_model_download_run(d, std::ptr::null_mut(), 0, &mut len);
            std::env::remove_var("TTPO_TEST_FORCE_PANIC");
            drop(env);
            assert_eq!(st, crate::status::TTPO_STATUS_PANIC as u32);
            let msg = CStr::from_ptr(ttpo_model_download_last_error(d));
            assert!(msg.to_str().unwrap().contains("forced panic"), "{msg:?}");
            assert_eq!(
                ttpo_model_download_set_progress_callback(d, None, std::ptr::null_mut()),
                TTPO_STATUS_OK as u32,
                "not left running"
            );
            ttpo_model_download_free(d);
        }
    }
}
