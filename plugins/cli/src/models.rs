//! The CLI's side of model resolution: the `ModelSpec` built from the global options, the
//! download bar, and the CLI's wording and exit codes for `ttpo_models` errors. Resolution
//! itself (cache layout, Hub, download, verify) lives in the `ttpo-models` crate, shared
//! with the C API.

use crate::error::{code, one_line, CliError, CliResult};
use crate::ui::ProgressMode;
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use ttpo_models::{Error, Hub, Request, Source, Transfer};

pub use ttpo_models::cache::{hub_cache_dir, list_cached, snapshot_dir};
pub use ttpo_models::hex;
pub use ttpo_models::hub::offline_from_env;
pub use ttpo_models::layout::missing_parts;
pub use ttpo_models::{DEFAULT_REPO, DEFAULT_REVISION};

/// Where the model comes from (built from the global options).
#[derive(Clone, Debug)]
pub struct ModelSpec {
    /// An explicit diffusers-layout folder (`--model-dir` / `TTPO_MODEL_DIR`).
    pub dir: Option<PathBuf>,
    /// Hub repo id.
    pub repo: String,
    /// Branch, tag or commit.
    pub revision: String,
    /// Resolve from the cache only.
    pub offline: bool,
    /// Prefer the `.fp16` weight files when downloading.
    pub fp16: bool,
    /// Progress display.
    pub progress: ProgressMode,
}

impl ModelSpec {
    /// Where the model comes from, as JSON reports and candidates.json give it.
    pub fn describe(&self) -> crate::saved::ModelRef {
        match &self.dir {
            Some(d) => crate::saved::ModelRef::Dir { dir: d.clone() },
            None => crate::saved::ModelRef::Repo {
                repo: self.repo.clone(),
                revision: self.revision.clone(),
            },
        }
    }

    fn source(&self) -> Source {
        match &self.dir {
            Some(d) => Source::Dir(d.clone()),
            None => Source::Repo {
                repo: self.repo.clone(),
                revision: self.revision.clone(),
            },
        }
    }

    fn hub(&self) -> Hub {
        let mut hub = Hub::from_env();
        hub.offline |= self.offline;
        hub
    }
}

/// The CLI's message and exit code for a `ttpo_models` error (the fixes it names are CLI
/// commands and options).
pub fn cli_error(spec: &ModelSpec, e: Error) -> CliError {
    let cache = hub_cache_dir();
    let offline = |why: &str| {
        CliError::new(
            code::MODEL_MISSING,
            format!(
                "model {} ({}) is {why} in the Hugging Face cache {} and offline mode is on; fetch it with `ttpo models download {}` or pass --model-dir DIR",
                spec.repo,
                spec.revision,
                cache.display(),
                spec.repo
            ),
        )
    };
    match e {
        Error::NotCached { missing, .. } if missing.is_empty() => offline("not"),
        Error::NotCached { missing, .. } => {
            offline(&format!("incomplete (missing {})", missing.join(", ")))
        }
        Error::Offline { .. } => offline("not downloadable while"),
        Error::Hub {
            action,
            repo,
            endpoint,
            status,
            detail,
        } => {
            let hint = match status {
                Some(401 | 403) => " (a gated or private repo needs a token: set HF_TOKEN)",
                Some(404) => " (check the repo id and revision)",
                _ => " (check the network or HF_ENDPOINT; use --model-dir for a local folder)",
            };
            CliError::new(
                code::MODEL_MISSING,
                format!("{action} {repo} from {endpoint}: {detail}{hint}"),
            )
        }
        Error::Cancelled => CliError::cancelled(),
        e @ (Error::FolderMissing(_) | Error::NotDiffusers { .. } | Error::NotInRepo { .. }) => {
            CliError::new(code::MODEL_MISSING, one_line(&e.to_string()))
        }
        Error::Invalid { message, .. } => CliError::new(code::MODEL_INVALID, one_line(&message)),
        e @ Error::Io { .. } => CliError::generic(one_line(&e.to_string())),
    }
}

/// The local folder of the model, downloading it unless offline.
pub fn resolve(spec: &ModelSpec) -> CliResult<PathBuf> {
    match ttpo_models::locate(&spec.source()) {
        Ok(dir) => Ok(dir),
        Err(Error::NotCached { .. }) if !spec.offline => download(spec, false).map(|r| r.dir),
        Err(e) => Err(cli_error(spec, e)),
    }
}

/// The download display: a bar per file (or one line per file with `--progress plain`).
struct DownloadBar {
    mode: ProgressMode,
    file: String,
    bar: Option<ProgressBar>,
}

impl DownloadBar {
    fn new(mode: ProgressMode) -> Self {
        Self {
            mode: mode.resolve(),
            file: String::new(),
            bar: None,
        }
    }

    fn bar(&self, t: &Transfer) -> ProgressBar {
        let target = if self.mode == ProgressMode::Bar {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(t.file_total), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:40!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(t.file.to_string());
        bar
    }
}

impl ttpo_models::Progress for DownloadBar {
    fn update(&mut self, t: &Transfer) {
        if t.file != self.file {
            self.file = t.file.to_string();
            self.bar = Some(self.bar(t));
            if self.mode == ProgressMode::Plain {
                eprintln!("downloading {} ({})", t.file, HumanBytes(t.file_total));
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_position(t.file_done);
            if t.file_total > 0 && t.file_done >= t.file_total {
                bar.finish_and_clear();
            }
        }
    }
}

/// Downloads (or completes) the model in the cache (see `ttpo_models::download`). Ctrl-C
/// exits at once here; the download resumes next time.
pub fn download(spec: &ModelSpec, force: bool) -> CliResult<ttpo_models::Downloaded> {
    let req = Request {
        fp16: spec.fp16,
        force,
        ..Request::new(&spec.repo, &spec.revision)
    };
    let mut bar = DownloadBar::new(spec.progress);
    ttpo_models::download(&spec.hub(), &req, &mut bar, &AtomicBool::new(false))
        .map_err(|e| cli_error(spec, e))
}

/// The Hub's file listing of the repo at the spec's revision.
pub fn fetch_listing(spec: &ModelSpec) -> CliResult<ttpo_models::hub::Listing> {
    spec.hub()
        .listing(&spec.repo, &spec.revision)
        .map_err(|e| cli_error(spec, e))
}

/// Downloads pyiqa's checkpoint `files` into the Hugging Face cache (resumable; kept when
/// complete) and returns the snapshot folder.
pub fn download_iqa(spec: &ModelSpec, files: Vec<String>, force: bool) -> CliResult<PathBuf> {
    let repo = ttpo::scoring::learned::IQA_REPO;
    let iqa = ModelSpec {
        dir: None,
        repo: repo.to_string(),
        revision: DEFAULT_REVISION.to_string(),
        ..spec.clone()
    };
    let req = Request {
        force,
        files: Some(files),
        ..Request::new(repo, DEFAULT_REVISION)
    };
    let mut bar = DownloadBar::new(spec.progress);
    ttpo_models::download(&iqa.hub(), &req, &mut bar, &AtomicBool::new(false))
        .map(|d| d.dir)
        .map_err(|e| cli_error(&iqa, e))
}

/// Where the learned metrics' checkpoints come from when no folder was given and core's
/// default folders lack them: the Hugging Face cache's copy of pyiqa's repo, downloaded on
/// first use unless offline. Sets `iqa_model_dir` to that snapshot.
pub fn resolve_iqa(spec: &ModelSpec, scoring: &mut ttpo::ScoringOptions) -> CliResult<()> {
    let files: Vec<String> = ttpo::scoring::learned::to_fetch(scoring)
        .iter()
        .map(|c| c.file.to_string())
        .collect();
    if files.is_empty() {
        return Ok(());
    }
    let repo = ttpo::scoring::learned::IQA_REPO;
    let cached =
        snapshot_dir(repo, DEFAULT_REVISION).filter(|d| files.iter().all(|f| d.join(f).is_file()));
    let dir = match cached {
        Some(d) => d,
        None if spec.offline => {
            return Err(CliError::new(
                code::MODEL_MISSING,
                format!(
                    "the learned metrics need pyiqa's checkpoint(s) {} (repo {repo}), which are in no folder TTPO looks in and offline mode is on; fetch them with `ttpo models download --metrics {}` or pass --iqa-model-dir DIR",
                    files.join(", "),
                    ttpo::scoring::learned::expand(&scoring.metrics)
                        .iter()
                        .filter(|m| ttpo::scoring::learned::checkpoint(m).is_some())
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ))
        }
        None => download_iqa(spec, files, false)?,
    };
    scoring.iqa_model_dir = Some(dir);
    Ok(())
}
