//! Terminal concerns: progress display, status lines, Ctrl-C handling, atomic output files.

use crate::args::Global;
use crate::error::{CliError, CliResult};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use ttpo::{CancelToken, Job, Progress, Stage};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, nothing otherwise.
    Auto,
    /// Always bars (drawn only on a terminal).
    Bar,
    /// One plain line per progress event on stderr (for logs and scripts).
    Plain,
    /// Nothing.
    None,
}

impl ProgressMode {
    /// Resolves `Auto` against the terminal.
    pub fn resolve(self) -> ProgressMode {
        match self {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::None,
            m => m,
        }
    }
}

/// Shows the progress of one job: one bar per stage with step counts and ETA.
pub struct StageProgress {
    mode: ProgressMode,
    prefix: String,
    bar: Option<(Stage, ProgressBar)>,
    last: Option<(Stage, usize)>,
}

impl StageProgress {
    pub fn new(mode: ProgressMode, prefix: impl Into<String>) -> Self {
        Self {
            mode: mode.resolve(),
            prefix: prefix.into(),
            bar: None,
            last: None,
        }
    }

    pub fn update(&mut self, p: &Progress) {
        if self.last == Some((p.stage, p.step)) {
            return;
        }
        self.last = Some((p.stage, p.step));
        match self.mode {
            ProgressMode::None | ProgressMode::Auto => {}
            ProgressMode::Plain => {
                eprintln!("{}{} {}/{}", self.prefix, p.stage.name(), p.step, p.total);
            }
            ProgressMode::Bar => {
                if self.bar.as_ref().map(|(s, _)| *s) != Some(p.stage) {
                    if let Some((_, old)) = self.bar.take() {
                        old.finish();
                    }
                    let bar = ProgressBar::with_draw_target(
                        Some(p.total as u64),
                        ProgressDrawTarget::stderr(),
                    );
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix}{msg:<10} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(self.prefix.clone());
                    bar.set_message(p.stage.name());
                    self.bar = Some((p.stage, bar));
                }
                let (_, bar) = self.bar.as_ref().expect("set above");
                bar.set_length(p.total as u64);
                bar.set_position(p.step as u64);
            }
        }
    }

    /// Closes the current bar.
    pub fn finish(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish();
        }
    }
}

impl Drop for StageProgress {
    fn drop(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.abandon();
        }
    }
}

/// Process-wide interrupt state shared with the signal handler.
struct Interrupt {
    flag: AtomicBool,
    token: Mutex<Option<CancelToken>>,
    temps: Mutex<Vec<PathBuf>>,
}

fn state() -> &'static Interrupt {
    static STATE: OnceLock<Interrupt> = OnceLock::new();
    STATE.get_or_init(|| Interrupt {
        flag: AtomicBool::new(false),
        token: Mutex::new(None),
        temps: Mutex::new(Vec::new()),
    })
}

fn remove_temps() {
    if let Ok(t) = state().temps.lock() {
        for p in t.iter() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Installs the Ctrl-C / SIGTERM handler. A running job is cancelled through its token
/// (it stops within one model call); with no job running (model loading, downloads) or on
/// a second Ctrl-C the process exits at once with code 130 after removing temp outputs.
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        let st = state();
        let again = st.flag.swap(true, Ordering::SeqCst);
        let token = st.token.lock().ok().and_then(|t| t.clone());
        match token {
            Some(t) if !again => t.cancel(),
            _ => {
                remove_temps();
                eprintln!("error: cancelled");
                std::process::exit(crate::error::code::CANCELLED);
            }
        }
    });
}

/// Whether an interrupt arrived.
pub fn interrupted() -> bool {
    state().flag.load(Ordering::SeqCst)
}

/// `Err(cancelled)` after an interrupt.
pub fn check_interrupt() -> CliResult<()> {
    if interrupted() {
        Err(CliError::cancelled())
    } else {
        Ok(())
    }
}

/// While alive, Ctrl-C cancels `token` instead of exiting.
pub struct ActiveJob;

impl ActiveJob {
    pub fn register(token: CancelToken) -> Self {
        if interrupted() {
            token.cancel();
        }
        if let Ok(mut t) = state().token.lock() {
            *t = Some(token);
        }
        ActiveJob
    }
}

impl Drop for ActiveJob {
    fn drop(&mut self) {
        if let Ok(mut t) = state().token.lock() {
            *t = None;
        }
    }
}

/// The temp name used for `path`: hidden, same folder (so the rename is atomic), same
/// extension (so the format is chosen the same way).
pub fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (name.clone(), String::new()),
    };
    let tmp = format!(".{stem}.ttpo-tmp-{}{ext}", std::process::id());
    match dir {
        Some(d) => d.join(tmp),
        None => PathBuf::from(tmp),
    }
}

/// Writes `path` through a temp file in the same folder and a rename: an interrupted run
/// never leaves a complete-looking output.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> CliResult<()>) -> CliResult<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::generic(format!("{}: {e}", dir.display())))?;
    }
    let tmp = temp_path(path);
    if let Ok(mut t) = state().temps.lock() {
        t.push(tmp.clone());
    }
    let result = write(&tmp).and_then(|_| check_interrupt()).and_then(|_| {
        std::fs::rename(&tmp, path)
            .map_err(|e| CliError::generic(format!("{}: {e}", path.display())))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    if let Ok(mut t) = state().temps.lock() {
        t.retain(|p| p != &tmp);
    }
    result
}

/// Saves an image atomically (16-bit PNG for `.png`; the extension picks the format).
pub fn save_image(img: &ttpo::Image, path: &Path) -> CliResult<()> {
    save_image_with_alpha(img, None, path)
}

/// Saves an image with the input's alpha plane (kept where the format holds alpha),
/// atomically. The temporary file has a hidden name, so the format is taken from `path`.
pub fn save_image_with_alpha(
    img: &ttpo::Image,
    alpha: Option<&[f32]>,
    path: &Path,
) -> CliResult<()> {
    let format = ttpo::image::output_format(path)
        .map_err(|e| CliError::usage(crate::error::one_line(&e.to_string())))?;
    write_atomic(path, |tmp| {
        img.save_with_alpha_as(tmp, alpha, format)
            .map_err(CliError::from)
    })
}

/// Writes text atomically.
pub fn save_text(text: &str, path: &Path) -> CliResult<()> {
    write_atomic(path, |tmp| {
        std::fs::write(tmp, text).map_err(|e| CliError::generic(format!("{}: {e}", tmp.display())))
    })
}

/// The effective progress mode (`--quiet` wins).
pub fn progress_mode(g: &Global) -> ProgressMode {
    if g.quiet {
        ProgressMode::None
    } else {
        g.progress
    }
}

/// A status line on stderr, unless `--quiet`.
pub fn status(g: &Global, msg: impl AsRef<str>) {
    if !g.quiet {
        eprintln!("{}", msg.as_ref());
    }
}

/// Which stages a command runs, for its time estimate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stages {
    /// Stage I and II (`ttpo candidates`).
    CandidatesOnly,
    /// What is left of the whole job (`ttpo refine`, `ttpo batch`).
    Rest,
}

/// Before a long job: a status line saying what it will take on this device (unless
/// `--quiet` or `--no-estimate`), e.g. "estimate: about 3 min 20 s (candidates 2 min 10 s,
/// scoring 3 s, refinement 1 min 07 s)". A failed estimate is said and the job goes on.
pub fn announce_estimate(g: &Global, job: &mut Job, prefix: &str, stages: Stages) {
    if g.quiet || g.no_estimate {
        return;
    }
    let describe = ttpo::Estimate::describe;
    match job.estimate() {
        Ok(e) => {
            let refine = if stages == Stages::Rest {
                e.refine
            } else {
                0.0
            };
            // Stages already done (0 s) are left out of the list.
            let parts: Vec<String> = [
                ("candidates", e.candidates),
                ("scoring", e.scoring),
                ("refinement", refine),
            ]
            .iter()
            .filter(|(_, s)| *s > 0.0)
            .map(|(name, s)| format!("{name} {}", describe(*s)))
            .collect();
            status(
                g,
                format!(
                    "{prefix}estimate: about {} ({})",
                    describe(e.candidates + e.scoring + refine),
                    parts.join(", ")
                ),
            );
        }
        Err(e) => status(g, format!("{prefix}no time estimate: {e}")),
    }
}

/// Runs `f` with progress shown and Ctrl-C wired to the job's cancel token.
pub fn with_job<T>(
    g: &Global,
    job: &mut Job,
    prefix: &str,
    f: impl FnOnce(&mut Job, &mut dyn FnMut(&Progress)) -> ttpo::Result<T>,
) -> CliResult<T> {
    let _active = ActiveJob::register(job.cancel_token());
    let mut bars = StageProgress::new(progress_mode(g), prefix);
    let r = f(job, &mut |p| bars.update(p));
    bars.finish();
    let v = r?;
    check_interrupt()?;
    Ok(v)
}
