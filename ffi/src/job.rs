//! `ttpo_job`: one refinement of one image — candidates, scores, choice, refine — with
//! per-job callbacks and a cancel callable from any thread.
//!
//! Threads: every callback runs on the thread that made the call that triggered it
//! (`ttpo_job_generate_candidates`, `ttpo_job_refine`, `ttpo_job_run`). Only
//! `ttpo_job_cancel` may be called while another call on the same job is running; any
//! other concurrent or re-entrant call on the job returns `TTPO_STATUS_INVALID_STATE`,
//! except queries from inside the choice callback.
//!
//! Two locks make that true: `running` is held for the whole of every call that runs or
//! changes the job (including the time its choice callback runs), so such a call made
//! meanwhile is refused before it touches anything — in particular before it could reset a
//! pending cancel; `state` guards the data and is taken briefly by queries (`try_lock`: a
//! query made while a stage runs is refused as busy, never blocks).
//!
//! A panic while the state is held (a bug in the engine or here) fails the job for good:
//! the call returns `TTPO_STATUS_PANIC` with the panic's message, and every later call on
//! the job returns `TTPO_STATUS_PANIC` saying that an earlier call failed so. The panic may
//! have left the `ttpo::Job` half-updated (candidates without scores, a choice without
//! candidates); answering from it could hand out wrong pixels with `TTPO_STATUS_OK`. The
//! locks do not poison (parking_lot), so the job can still be cancelled, read for its last
//! error and freed, and the engine — immutable, shared by `Arc` — keeps serving new jobs.

use crate::engine::ttpo_engine;
use crate::image::{read, ttpo_image, validate, write};
use crate::options::ttpo_options;
use crate::panic::{catch, guard, test_hook};
use crate::status::{
    Failure, FfiResult, LastError, TTPO_STATUS_CANCELLED, TTPO_STATUS_INVALID_STATE,
    TTPO_STATUS_PANIC,
};
use parking_lot::Mutex;
use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use ttpo::{CancelToken, Selection};

/// Progress: `stage` is a `ttpo_stage` value, `step` of `total` units done, `fraction` =
/// step / total (within the stage; `ttpo_job_progress_overall` gives the whole job's).
/// Called at least once per model call.
pub type ttpo_progress_fn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, stage: u32, step: u32, total: u32, fraction: f64),
>;
/// Cancel poll: return non-zero to stop the job. Polled before every model call.
pub type ttpo_cancel_fn = Option<unsafe extern "C" fn(user_data: *mut c_void) -> i32>;
/// Human choice, called by `ttpo_job_run` after scoring with the automatic choice in
/// `*preferred` / `*dispreferred`; change them to override. The job may be queried from
/// inside; calls that would run or change it return `TTPO_STATUS_INVALID_STATE`. Return 0
/// to continue, non-zero to cancel.
pub type ttpo_choice_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        job: *const ttpo_job,
        preferred: *mut u32,
        dispreferred: *mut u32,
    ) -> i32,
>;

/// Stages reported to the progress callback.
#[repr(u32)]
pub enum ttpo_stage {
    /// Stage I: candidates (encode, img2img, decode).
    TTPO_STAGE_CANDIDATES = 1,
    /// Stage II: scoring.
    TTPO_STAGE_SCORING = 2,
    /// Stage III: guided refinement.
    TTPO_STAGE_REFINE = 3,
}

#[derive(Clone, Copy)]
struct UserData(*mut c_void);
// SAFETY: the pointer is only handed back to the caller's own callbacks, on the thread of
// the call; the caller is responsible for what it points to (documented in the header).
unsafe impl Send for UserData {}

#[derive(Clone, Copy, Default)]
struct Callbacks {
    progress: Option<(
        unsafe extern "C" fn(*mut c_void, u32, u32, u32, f64),
        UserData,
    )>,
    cancel: Option<(unsafe extern "C" fn(*mut c_void) -> i32, UserData)>,
    choice: Option<(
        unsafe extern "C" fn(*mut c_void, *const ttpo_job, *mut u32, *mut u32) -> i32,
        UserData,
    )>,
}

struct State {
    job: ttpo::Job,
    alpha: Option<Vec<f32>>,
    callbacks: Callbacks,
    metric_names: Vec<CString>,
    /// The message of the panic that failed the job (see the module doc).
    panicked: Option<String>,
}

/// A job (opaque).
pub struct ttpo_job {
    cancel: CancelToken,
    last_error: LastError,
    /// Held by the call that runs or changes the job (see the module doc).
    running: AtomicBool,
    state: Mutex<State>,
    /// The last progress event's overall fraction (f64 bits), readable at any time.
    overall: AtomicU64,
}

fn busy() -> Failure {
    Failure::new(
        TTPO_STATUS_INVALID_STATE,
        "the job is busy: another call on it is running (only ttpo_job_cancel may be called meanwhile; the choice callback may only query)",
    )
}

fn failed_by_panic(message: &str) -> Failure {
    Failure::new(
        TTPO_STATUS_PANIC,
        format!(
            "this job failed in an earlier call ({message}); its state cannot be trusted: free it and create a new job (the engine is unaffected)"
        ),
    )
}

/// Releases `running` when the exclusive call ends, also when it unwinds (also used by
/// `model.rs` for a running download).
pub(crate) struct Exclusive<'a>(pub(crate) &'a AtomicBool);
impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl ttpo_job {
    /// A query: reads the job if no stage holds it right now, or, on the thread running
    /// this job's choice callback, the view that call lent (see [`ChoiceView`]).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&View) -> FfiResult<T>) -> FfiResult<T> {
        if let Some(view) = ChoiceView::current(self) {
            // Read-only: a panic here leaves nothing half-updated, so it fails this call only.
            return catch(|| f(view));
        }
        let mut g = self.state.try_lock().ok_or_else(busy)?;
        held(&mut g, |s| {
            f(&View {
                job: &s.job,
                metric_names: &s.metric_names,
                alpha: s.alpha.as_deref(),
            })
        })
    }

    /// A call that runs or changes the job: refused while another such call is running;
    /// it starts uncancelled (a cancel requested before it began was for an earlier call).
    fn exclusive<T>(&self, f: impl FnOnce(&Self) -> FfiResult<T>) -> FfiResult<T> {
        if self
            .running
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(busy());
        }
        let _release = Exclusive(&self.running);
        self.cancel.reset();
        self.locked(|s| {
            s.job.cancel_token().reset();
            Ok(())
        })?;
        f(self)
    }

    /// A quick change of the job's data (a setter, a choice): [`ttpo_job::exclusive`] with
    /// the state held throughout.
    fn change<T>(&self, f: impl FnOnce(&mut State) -> FfiResult<T>) -> FfiResult<T> {
        self.exclusive(|j| j.locked(f))
    }

    /// The state for a call that holds `running`: waits for a query to finish.
    fn locked<T>(&self, f: impl FnOnce(&mut State) -> FfiResult<T>) -> FfiResult<T> {
        held(&mut self.state.lock(), f)
    }

    /// A cancel requested while the call ran wins, even when it came after the last model
    /// call: checked once more before the call commits its result.
    fn not_cancelled(&self) -> FfiResult {
        if self.cancel.is_cancelled() {
            return Err(Failure::new(TTPO_STATUS_CANCELLED, "cancelled"));
        }
        Ok(())
    }
}

/// Runs `f` on the held state of a job that no panic failed; a panic in `f` fails the job
/// (the mark is set before the lock is released, so no other call sees the state first).
fn held<T>(s: &mut State, f: impl FnOnce(&mut State) -> FfiResult<T>) -> FfiResult<T> {
    if let Some(message) = &s.panicked {
        return Err(failed_by_panic(message));
    }
    catch(|| f(s)).inspect_err(|e| {
        if e.panicked {
            s.panicked = Some(e.message.clone());
        }
    })
}

/// What a query reads of a job.
pub(crate) struct View<'a> {
    pub(crate) job: &'a ttpo::Job,
    metric_names: &'a [CString],
    alpha: Option<&'a [f32]>,
}

thread_local! {
    /// Set while this thread runs a job's choice callback: the handle and a view of its job.
    static CHOICE_VIEW: Cell<Option<(*const ttpo_job, *const ())>> = const { Cell::new(None) };
}

/// Lends a view of the job to the queries its choice callback makes. The run holds the
/// job's state for the whole of `ttpo::Job::run_with` (the chooser runs inside it), so the
/// callback's queries cannot take the lock; on this thread, for this handle and only while
/// the callback runs, they read the view instead. Other threads' queries are refused as busy.
struct ChoiceView;

impl ChoiceView {
    fn enter(handle: &ttpo_job, view: &View) -> Self {
        CHOICE_VIEW.with(|c| {
            c.set(Some((
                handle as *const ttpo_job,
                view as *const View as *const (),
            )))
        });
        ChoiceView
    }

    fn current<'a>(handle: &ttpo_job) -> Option<&'a View<'a>> {
        let (h, v) = CHOICE_VIEW.with(Cell::get)?;
        // SAFETY: set by `enter` on this thread and cleared by the guard's drop (also on
        // unwinding) before the view it points at goes away; the view is only read.
        std::ptr::eq(h, handle).then(|| unsafe { &*(v as *const View<'a>) })
    }
}

impl Drop for ChoiceView {
    fn drop(&mut self) {
        CHOICE_VIEW.with(|c| c.set(None));
    }
}

unsafe fn job_ref<'a>(job: *const ttpo_job) -> FfiResult<&'a ttpo_job> {
    job.as_ref().ok_or_else(|| Failure::null("job"))
}

/// Runs `f` on a job with its error recorded on the handle.
pub(crate) unsafe fn on_job(job: *const ttpo_job, f: impl FnOnce(&ttpo_job) -> FfiResult) -> u32 {
    let Some(j) = job.as_ref() else {
        return guard(None, || Err(Failure::null("job")));
    };
    guard(Some(&j.last_error), || f(j))
}

/// The engine's progress callback for one call: forwards to the C callbacks and turns a
/// cancel (from the poll callback or from `ttpo_job_cancel` on the handle's token) into a
/// cancel of the engine's own token, which is what its loops check.
fn progress_closure<'a>(
    cb: Callbacks,
    j: &'a ttpo_job,
    engine: CancelToken,
) -> impl FnMut(&ttpo::Progress) + 'a {
    let handle = j.cancel.clone();
    move |p: &ttpo::Progress| {
        // Before the callback, so that `ttpo_job_progress_overall` called from it agrees.
        j.overall.store(p.overall().to_bits(), Ordering::Relaxed);
        if let Some((f, ud)) = cb.progress {
            // SAFETY: the caller registered `f` for this user data.
            unsafe {
                f(
                    ud.0,
                    p.stage as u32,
                    p.step as u32,
                    p.total as u32,
                    p.fraction(),
                )
            };
        }
        if let Some((f, ud)) = cb.cancel {
            // SAFETY: as above.
            if unsafe { f(ud.0) } != 0 {
                handle.cancel();
            }
        }
        if handle.is_cancelled() {
            engine.cancel();
        }
    }
}

/// Creates a job on `engine` for the image `input` (copied; alpha is kept aside and
/// restored in outputs) with `options` (copied; NULL = defaults). Nothing heavy runs yet.
///
/// # Safety
/// Pointers must be valid or NULL; `input` must describe readable memory.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_new(
    engine: *const ttpo_engine,
    options: *const ttpo_options,
    input: *const ttpo_image,
    out: *mut *mut ttpo_job,
) -> u32 {
    let handle_err = engine.as_ref().map(|e| &e.last_error);
    guard(handle_err, || {
        let engine = engine.as_ref().ok_or_else(|| Failure::null("engine"))?;
        let input = input.as_ref().ok_or_else(|| Failure::null("input"))?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let mut opts = options
            .as_ref()
            .map(|o| o.inner.clone())
            .unwrap_or_default();
        crate::model::use_cached_iqa(&mut opts.scoring);
        let shape = validate(input, opts.max_pixels)?;
        // Before the pixels are copied in: a size the machine cannot hold is a status.
        opts.check_host_memory(shape.width, shape.height)?;
        let (img, alpha) = read(input, &shape)?;
        let job = ttpo::Job::new(engine.engine.clone(), img, opts)?;
        // The alpha plane goes to the outputs, which a restore step makes larger.
        let size = (shape.width, shape.height);
        let alpha = alpha.map(|a| ttpo::image::scale_alpha(&a, size, job.output_size()));
        let state = State {
            job,
            alpha,
            callbacks: Callbacks::default(),
            metric_names: Vec::new(),
            panicked: None,
        };
        *out = Box::into_raw(Box::new(ttpo_job {
            cancel: CancelToken::new(),
            last_error: LastError::default(),
            running: AtomicBool::new(false),
            state: Mutex::new(state),
            overall: AtomicU64::new(0f64.to_bits()),
        }));
        Ok(())
    })
}

/// Frees a job (NULL is ignored). No other call may be running on it.
///
/// # Safety
/// `job` must come from `ttpo_job_new` and not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_free(job: *mut ttpo_job) {
    if !job.is_null() {
        crate::panic::guard_value((), || drop(Box::from_raw(job)));
    }
}

/// The latest error message of calls on this job ("" if none; NULL for a NULL handle). The
/// string is this thread's copy: valid until this thread reads this job's error again or
/// frees the job; other threads' failing calls never invalidate it.
///
/// # Safety
/// `job` must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_last_error(job: *const ttpo_job) -> *const c_char {
    match job.as_ref() {
        Some(j) => j.last_error.ptr(),
        None => std::ptr::null(),
    }
}

/// Asks the running call on this job to stop; it returns `TTPO_STATUS_CANCELLED` within
/// one model call, also when the cancel comes after its last model call but before it
/// returned, and writes no output. Callable from any thread, also from callbacks; a call
/// refused as busy meanwhile does not clear it. The next call on the job starts
/// uncancelled.
///
/// # Safety
/// `job` must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_cancel(job: *const ttpo_job) -> u32 {
    guard(None, || {
        job_ref(job)?.cancel.cancel();
        Ok(())
    })
}

/// Sets the progress callback (NULL `callback` removes it).
///
/// # Safety
/// `job` must be valid; `user_data` is passed back untouched.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_set_progress_callback(
    job: *mut ttpo_job,
    callback: ttpo_progress_fn,
    user_data: *mut c_void,
) -> u32 {
    on_job(job, |j| {
        j.change(|s| {
            s.callbacks.progress = callback.map(|f| (f, UserData(user_data)));
            Ok(())
        })
    })
}

/// Sets the cancel poll callback (NULL removes it).
///
/// # Safety
/// As `ttpo_job_set_progress_callback`.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_set_cancel_callback(
    job: *mut ttpo_job,
    callback: ttpo_cancel_fn,
    user_data: *mut c_void,
) -> u32 {
    on_job(job, |j| {
        j.change(|s| {
            s.callbacks.cancel = callback.map(|f| (f, UserData(user_data)));
            Ok(())
        })
    })
}

/// Sets the human-choice callback used by `ttpo_job_run` (NULL removes it).
///
/// # Safety
/// As `ttpo_job_set_progress_callback`.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_set_choice_callback(
    job: *mut ttpo_job,
    callback: ttpo_choice_fn,
    user_data: *mut c_void,
) -> u32 {
    on_job(job, |j| {
        j.change(|s| {
            s.callbacks.choice = callback.map(|f| (f, UserData(user_data)));
            Ok(())
        })
    })
}

/// Stage I + II on a job whose `running` the caller holds.
fn generate(j: &ttpo_job) -> FfiResult {
    j.locked(|s| {
        test_hook("generate_candidates");
        let mut progress = progress_closure(s.callbacks, j, s.job.cancel_token());
        j.not_cancelled()?;
        s.job.generate_candidates(&mut progress)?;
        s.metric_names = s
            .job
            .scores()
            .map(|sc| {
                sc.metrics
                    .iter()
                    .map(|m| CString::new(m.as_str()).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        // The candidates are kept (a later call reuses them); the call still reports the
        // cancel that arrived while it ran.
        j.not_cancelled()
    })
}

/// Stage III into `out`, on a job whose `running` the caller holds: `stage` makes the
/// image (a refine, or the rest of a run) with the call's progress closure.
fn stage3_into(
    j: &ttpo_job,
    out: &ttpo_image,
    stage: impl FnOnce(&mut State, &mut dyn FnMut(&ttpo::Progress)) -> FfiResult<ttpo::Image>,
) -> FfiResult {
    j.locked(|s| {
        let (w, h) = (s.job.input().width(), s.job.input().height());
        let shape = validate(out, usize::MAX)?;
        if (shape.width, shape.height) != (w, h) {
            return Err(Failure::arg(format!(
                "output buffer is {}x{}, the input is {w}x{h}",
                shape.width, shape.height
            )));
        }
        let mut progress = progress_closure(s.callbacks, j, s.job.cancel_token());
        j.not_cancelled()?;
        let result = stage(s, &mut progress)?;
        j.not_cancelled()?;
        // SAFETY: `out` was validated above; the caller guarantees its memory.
        unsafe { write(out, &shape, &result, s.alpha.as_deref()) }
    })
}

/// Stage I + II: makes and scores every candidate (the input is candidate 0).
///
/// # Safety
/// `job` must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_generate_candidates(job: *mut ttpo_job) -> u32 {
    on_job(job, |j| j.exclusive(generate))
}

/// Number of candidates (0 before `ttpo_job_generate_candidates`).
///
/// # Safety
/// Pointers must be valid or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_candidate_count(job: *const ttpo_job, count: *mut u32) -> u32 {
    on_job(job, |j| {
        let n = j.with(|s| Ok(s.job.candidates().len() as u32))?;
        *count.as_mut().ok_or_else(|| Failure::null("count"))? = n;
        Ok(())
    })
}

fn candidate_index(s: &View, index: u32) -> FfiResult<usize> {
    let n = s.job.candidates().len();
    if n == 0 {
        return Err(Failure::new(
            TTPO_STATUS_INVALID_STATE,
            "no candidates yet: call ttpo_job_generate_candidates first",
        ));
    }
    if index as usize >= n {
        return Err(Failure::arg(format!(
            "candidate index {index} is not below {n}"
        )));
    }
    Ok(index as usize)
}

/// Copies candidate `index` into `out` (the input's size; any format/layout).
///
/// # Safety
/// `out` must describe writable memory.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_candidate_image(
    job: *const ttpo_job,
    index: u32,
    out: *const ttpo_image,
) -> u32 {
    on_job(job, |j| {
        let out = out.as_ref().ok_or_else(|| Failure::null("out"))?;
        j.with(|s| {
            let i = candidate_index(s, index)?;
            let shape = validate(out, usize::MAX)?;
            write(out, &shape, &s.job.candidates()[i].image, s.alpha)
        })
    })
}

/// Metadata of candidate `index`: its img2img strength (0 for the input), its seed (0 for
/// the input) and its fused score (higher is preferred). Any output pointer may be NULL.
///
/// # Safety
/// Output pointers must be writable or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_candidate_info(
    job: *const ttpo_job,
    index: u32,
    strength: *mut f64,
    seed: *mut u64,
    fused_score: *mut f64,
) -> u32 {
    on_job(job, |j| {
        let (st, sd, sc) = j.with(|s| {
            let i = candidate_index(s, index)?;
            let c = &s.job.candidates()[i];
            let score = s.job.scores().map_or(f64::NAN, |sc| sc.fused[i]);
            Ok((
                c.spec.as_ref().map_or(0.0, |x| x.strength),
                c.spec.as_ref().map_or(0, |x| x.seed),
                score,
            ))
        })?;
        if let Some(p) = strength.as_mut() {
            *p = st;
        }
        if let Some(p) = seed.as_mut() {
            *p = sd;
        }
        if let Some(p) = fused_score.as_mut() {
            *p = sc;
        }
        Ok(())
    })
}

/// Number of metrics that scored the candidates.
///
/// # Safety
/// Pointers must be valid or NULL.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_metric_count(job: *const ttpo_job, count: *mut u32) -> u32 {
    on_job(job, |j| {
        let n = j.with(|s| Ok(s.metric_names.len() as u32))?;
        *count.as_mut().ok_or_else(|| Failure::null("count"))? = n;
        Ok(())
    })
}

/// Name of metric `metric` (valid until the job is freed or regenerates candidates); NULL
/// if out of range.
///
/// # Safety
/// `job` must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_metric_name(job: *const ttpo_job, metric: u32) -> *const c_char {
    crate::panic::guard_value(std::ptr::null(), || match job.as_ref() {
        Some(j) => j
            .with(|s| {
                Ok(s.metric_names
                    .get(metric as usize)
                    .map_or(std::ptr::null(), |c| c.as_ptr()))
            })
            .unwrap_or(std::ptr::null()),
        None => std::ptr::null(),
    })
}

/// The raw score of candidate `index` under metric `metric`.
///
/// # Safety
/// `value` must be writable.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_candidate_metric(
    job: *const ttpo_job,
    index: u32,
    metric: u32,
    value: *mut f64,
) -> u32 {
    on_job(job, |j| {
        let v = j.with(|s| {
            let i = candidate_index(s, index)?;
            let sc = s.job.scores().ok_or_else(|| {
                Failure::new(TTPO_STATUS_INVALID_STATE, "candidates are not scored")
            })?;
            sc.per_metric[i]
                .get(metric as usize)
                .copied()
                .ok_or_else(|| {
                    Failure::arg(format!(
                        "metric index {metric} is not below {}",
                        sc.metrics.len()
                    ))
                })
        })?;
        *value.as_mut().ok_or_else(|| Failure::null("value"))? = v;
        Ok(())
    })
}

/// Chooses the preferred and dispreferred candidates by index (they must differ).
///
/// # Safety
/// `job` must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_choose(
    job: *mut ttpo_job,
    preferred: u32,
    dispreferred: u32,
) -> u32 {
    on_job(job, |j| {
        j.change(|s| {
            s.job.choose(Selection::Given {
                preferred: preferred as usize,
                dispreferred: dispreferred as usize,
            })?;
            Ok(())
        })
    })
}

/// Restores the metrics' automatic choice.
///
/// # Safety
/// `job` must be NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_choose_auto(job: *mut ttpo_job) -> u32 {
    on_job(job, |j| {
        j.change(|s| {
            s.job.choose(Selection::Auto)?;
            Ok(())
        })
    })
}

/// The current choice.
///
/// # Safety
/// Output pointers must be writable.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_get_choice(
    job: *const ttpo_job,
    preferred: *mut u32,
    dispreferred: *mut u32,
) -> u32 {
    on_job(job, |j| {
        let (p, d) = j.with(|s| {
            s.job.choice().ok_or_else(|| {
                Failure::new(
                    TTPO_STATUS_INVALID_STATE,
                    "no choice yet: generate candidates first",
                )
            })
        })?;
        let (pp, dd) = (
            preferred
                .as_mut()
                .ok_or_else(|| Failure::null("preferred"))?,
            dispreferred
                .as_mut()
                .ok_or_else(|| Failure::null("dispreferred"))?,
        );
        *pp = p as u32;
        *dd = d as u32;
        Ok(())
    })
}

/// Stage III with the current choice, into `out` (the input's size). Candidates are not
/// recomputed: choose again and refine again freely.
///
/// # Safety
/// `out` must describe writable memory.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_refine(job: *mut ttpo_job, out: *const ttpo_image) -> u32 {
    on_job(job, |j| {
        let out = out.as_ref().ok_or_else(|| Failure::null("out"))?;
        j.exclusive(|j| stage3_into(j, out, |s, progress| Ok(s.job.refine(progress)?)))
    })
}

/// The whole job: candidates (unless already generated), scores, the choice (the choice
/// callback may override the automatic one), refinement into `out`.
///
/// # Safety
/// `out` must describe writable memory.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_run(job: *mut ttpo_job, out: *const ttpo_image) -> u32 {
    on_job(job, |j| {
        let out = out.as_ref().ok_or_else(|| Failure::null("out"))?;
        validate(out, usize::MAX)?;
        j.exclusive(|j| run(j, out))
    })
}

/// The whole job on a job whose `running` the caller holds: `ttpo::Job::run_with`, with
/// the choice callback as its chooser. `running` and the state stay held while the
/// callback runs, so it can query the job (through [`ChoiceView`]) but not run or change it.
fn run(j: &ttpo_job, out: &ttpo_image) -> FfiResult {
    // Stage I + II as their own step, so the metric names are ready for the callback.
    if j.locked(|s| Ok(s.job.candidates().is_empty()))? {
        generate(j)?;
    }
    stage3_into(j, out, |s, progress| {
        let State {
            job,
            callbacks,
            metric_names,
            alpha,
            ..
        } = s;
        let choice = callbacks.choice;
        let mut refused = false;
        let result = job.run_with(progress, &mut |job| {
            let (p, d) = job.choice().expect("run_with makes a choice first");
            let Some((f, ud)) = choice else {
                return Ok((p, d));
            };
            let (mut p, mut d) = (p as u32, d as u32);
            let view = View {
                job,
                metric_names,
                alpha: alpha.as_deref(),
            };
            let _lent = ChoiceView::enter(j, &view);
            // SAFETY: the caller registered `f` for this user data.
            if unsafe { f(ud.0, j as *const ttpo_job, &mut p, &mut d) } != 0 {
                refused = true;
                return Err(ttpo::Error::Cancelled);
            }
            if j.cancel.is_cancelled() {
                return Err(ttpo::Error::Cancelled);
            }
            Ok((p as usize, d as usize))
        });
        if refused {
            return Err(Failure::new(
                TTPO_STATUS_CANCELLED,
                "cancelled by the choice callback",
            ));
        }
        Ok(result?)
    })
}

/// The job's overall progress in [0, 1] as of its latest progress event: every stage's
/// share of the whole job (Stage I → III) by model calls, the same weighting for every
/// adapter (the progress callback's `fraction` is per stage). Readable at any time, from
/// any thread and from inside the progress callback (where it is the current event's).
/// 0 before the first event; a stage run again goes over its span again.
///
/// # Safety
/// `job` must be NULL or valid; `overall` writable.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_progress_overall(job: *const ttpo_job, overall: *mut f64) -> u32 {
    on_job(job, |j| {
        let out = overall.as_mut().ok_or_else(|| Failure::null("overall"))?;
        *out = f64::from_bits(j.overall.load(Ordering::Relaxed));
        Ok(())
    })
}

/// What the rest of the job (`ttpo_job_run` from where it stands) would take on this
/// device, in seconds: `seconds` gets the total; `stage_seconds` (NULL, or room for 3)
/// gets Stage I, II and III, with stages already done as 0. The job's model calls are
/// counted exactly; what one call costs is measured by a few probe calls at the job's tile
/// sizes (one UNet call and two VAE tiles: ~30 s at 512 px on a 2-core CPU, well under a
/// second on a GPU), once per engine and tile
/// shape, so later estimates of same-shaped jobs return at once. Metrics are timed on the
/// input. Blocks like a stage (the job is busy meanwhile); show the result before a long
/// job, e.g. "about 3 min".
///
/// # Safety
/// `job` must be NULL or valid; `seconds` writable; `stage_seconds` NULL or writable for 3.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_estimate(
    job: *mut ttpo_job,
    seconds: *mut f64,
    stage_seconds: *mut f64,
) -> u32 {
    on_job(job, |j| {
        let total = seconds.as_mut().ok_or_else(|| Failure::null("seconds"))?;
        let e = j.exclusive(|j| j.locked(|s| Ok(s.job.estimate()?)))?;
        *total = e.total();
        if !stage_seconds.is_null() {
            // SAFETY: the caller guarantees room for three values when not NULL.
            let stages = std::slice::from_raw_parts_mut(stage_seconds, 3);
            stages.copy_from_slice(&[e.candidates, e.scoring, e.refine]);
        }
        Ok(())
    })
}

/// Size of every output buffer (candidates, refined result): the input's, or with a
/// `restore` option the restored size (the input's times the network's scale), before and
/// after Stage I alike.
///
/// # Safety
/// Output pointers must be writable.
#[no_mangle]
pub unsafe extern "C" fn ttpo_job_size(
    job: *const ttpo_job,
    width: *mut u32,
    height: *mut u32,
) -> u32 {
    size_query(job, width, height, |s| {
        let (w, h) = s.job.output_size();
        Ok((w as u32, h as u32))
    })
}

/// A query that answers a width and a height: both pointers are checked before either is
/// written (outputs only on success).
pub(crate) unsafe fn size_query(
    job: *const ttpo_job,
    width: *mut u32,
    height: *mut u32,
    f: impl FnOnce(&View) -> FfiResult<(u32, u32)>,
) -> u32 {
    on_job(job, |j| {
        let width = width.as_mut().ok_or_else(|| Failure::null("width"))?;
        let height = height.as_mut().ok_or_else(|| Failure::null("height"))?;
        let (w, h) = j.with(f)?;
        *width = w;
        *height = h;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ttpo_engine_free, ttpo_engine_new};
    use crate::options::*;
    use crate::status::{TTPO_STATUS_OK, TTPO_STATUS_PANIC};
    use std::ffi::CStr;

    unsafe fn job_error(job: *const ttpo_job) -> String {
        CStr::from_ptr(ttpo_job_last_error(job))
            .to_string_lossy()
            .into_owned()
    }

    /// A 16x16 RGBA gradient and a tiny model: the smallest job the engine accepts.
    /// A tiny model written under a temporary folder (`tag` names it) and an engine on it.
    unsafe fn tiny_engine(tag: &str) -> (std::path::PathBuf, *mut ttpo_engine) {
        let dir = std::env::temp_dir().join(format!("ttpo-ffi-{tag}-{}", std::process::id()));
        ttpo::diffusion::tiny::write_tiny_model(&dir, ttpo::diffusion::tiny::TinyKind::Epsilon, 0)
            .unwrap();
        let path = CString::new(dir.to_str().unwrap()).unwrap();
        let mut engine = std::ptr::null_mut();
        assert_eq!(
            ttpo_engine_new(path.as_ptr(), 1, 0, 0, &mut engine),
            TTPO_STATUS_OK as u32
        );
        (dir, engine)
    }

    unsafe fn tiny_job(engine: *const ttpo_engine, pixels: &mut [u8]) -> *mut ttpo_job {
        for (i, p) in pixels.iter_mut().enumerate() {
            *p = (i * 7 % 251) as u8;
        }
        let o = ttpo_options_new();
        assert_eq!(ttpo_options_set_steps(o, 2), TTPO_STATUS_OK as u32);
        assert_eq!(ttpo_options_set_refine_steps(o, 2), TTPO_STATUS_OK as u32);
        assert_eq!(
            ttpo_options_set_strengths(o, [0.4].as_ptr(), 1),
            TTPO_STATUS_OK as u32
        );
        assert_eq!(
            ttpo_options_set_metrics(o, c"sharpness".as_ptr()),
            TTPO_STATUS_OK as u32
        );
        let mut job = std::ptr::null_mut();
        let st = ttpo_job_new(engine, o, &image(pixels), &mut job);
        ttpo_options_free(o);
        assert_eq!(st, TTPO_STATUS_OK as u32);
        job
    }

    /// Held by the tests that run jobs: the panic test sets a process-wide variable that
    /// would make a job of another test panic meanwhile.
    static RUNS: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

    fn image(pixels: &mut [u8]) -> ttpo_image {
        ttpo_image {
            data: pixels.as_mut_ptr().cast(),
            width: 16,
            height: 16,
            stride: 64,
            format: 0,
            layout: 2,
        }
    }

    /// A panic inside a job call (forced by the debug-build hook) returns PANIC with its
    /// message; every later call on that job says it failed by a panic, without blocking or
    /// claiming to be busy; the engine keeps serving new jobs.
    #[test]
    fn a_panic_fails_its_job_and_leaves_the_engine_usable() {
        let _alone = RUNS.lock();
        let (dir, engine) = unsafe { tiny_engine("panic") };
        unsafe {
            let mut pixels = vec![0u8; 16 * 16 * 4];
            let job = tiny_job(engine, &mut pixels);

            let env = crate::panic::TEST_HOOK_ENV.lock();
            std::env::set_var("TTPO_TEST_FORCE_PANIC", "generate_candidates");
            let st = ttpo_job_generate_candidates(job);
            std::env::remove_var("TTPO_TEST_FORCE_PANIC");
            drop(env);
            assert_eq!(st, TTPO_STATUS_PANIC as u32);
            let first = job_error(job);
            assert!(
                first.contains("forced panic at generate_candidates"),
                "{first}"
            );

            // Later calls: queries, changes and runs all report the earlier panic.
            let mut n = 77u32;
            assert_eq!(
                ttpo_job_candidate_count(job, &mut n),
                TTPO_STATUS_PANIC as u32
            );
            assert_eq!(n, 77, "no output on failure");
            let again = job_error(job);
            assert!(
                again.contains("failed in an earlier call") && again.contains("forced panic"),
                "{again}"
            );
            assert_eq!(ttpo_job_choose_auto(job), TTPO_STATUS_PANIC as u32);
            assert_eq!(ttpo_job_generate_candidates(job), TTPO_STATUS_PANIC as u32);
            assert!(ttpo_job_metric_name(job, 0).is_null());
            // Cancel and free still work on the failed job.
            assert_eq!(ttpo_job_cancel(job), TTPO_STATUS_OK as u32);
            ttpo_job_free(job);

            // The engine is unaffected: a new job runs to the end.
            let job = tiny_job(engine, &mut pixels);
            let mut out = vec![0u8; 16 * 16 * 4];
            assert_eq!(ttpo_job_run(job, &image(&mut out)), TTPO_STATUS_OK as u32);
            assert_eq!(ttpo_job_candidate_count(job, &mut n), TTPO_STATUS_OK as u32);
            assert_eq!(n, 2, "the input and one candidate");
            assert!(out.iter().any(|&v| v != 0), "the output was written");
            ttpo_job_free(job);
            ttpo_engine_free(engine);
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Overall progress runs once through [0, 1] over a whole run, never backwards, with
    /// the stages in order; `ttpo_job_progress_overall` read inside the progress callback
    /// is the current event's. The choice callback can query its job while the run holds it.
    #[test]
    fn overall_progress_and_the_choice_callback() {
        let _alone = RUNS.lock();
        struct Seen {
            job: *const ttpo_job,
            events: Vec<(u32, f64, f64)>,
        }
        unsafe extern "C" fn on_progress(ud: *mut c_void, stage: u32, _: u32, _: u32, f: f64) {
            let seen = &mut *(ud as *mut Seen);
            let mut overall = -1.0;
            assert_eq!(
                ttpo_job_progress_overall(seen.job, &mut overall),
                TTPO_STATUS_OK as u32
            );
            seen.events.push((stage, f, overall));
        }
        unsafe extern "C" fn choose(
            ud: *mut c_void,
            job: *const ttpo_job,
            p: *mut u32,
            d: *mut u32,
        ) -> i32 {
            let mut n = 0;
            assert_eq!(ttpo_job_candidate_count(job, &mut n), TTPO_STATUS_OK as u32);
            assert_eq!(n, 2);
            let mut metrics = 0;
            assert_eq!(
                ttpo_job_metric_count(job, &mut metrics),
                TTPO_STATUS_OK as u32
            );
            assert_eq!(metrics, 1);
            *(ud as *mut (u32, u32)) = (*p, *d);
            (*p, *d) = (0, 1);
            0
        }
        let (dir, engine) = unsafe { tiny_engine("overall") };
        unsafe {
            let mut pixels = vec![0u8; 16 * 16 * 4];
            let job = tiny_job(engine, &mut pixels);
            let mut before = -1.0;
            assert_eq!(
                ttpo_job_progress_overall(job, &mut before),
                TTPO_STATUS_OK as u32
            );
            assert_eq!(before, 0.0);
            let mut seen = Seen {
                job,
                events: Vec::new(),
            };
            let mut auto = (9u32, 9u32);
            ttpo_job_set_progress_callback(job, Some(on_progress), (&mut seen as *mut Seen).cast());
            ttpo_job_set_choice_callback(job, Some(choose), (&mut auto as *mut (u32, u32)).cast());
            let mut out = vec![0u8; 16 * 16 * 4];
            assert_eq!(ttpo_job_run(job, &image(&mut out)), TTPO_STATUS_OK as u32);
            let ev = &seen.events;
            assert!(
                ev.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].2 <= w[1].2),
                "{:?}",
                ev.iter().map(|e| (e.0, e.2)).collect::<Vec<_>>()
            );
            assert_eq!(ev.first().unwrap().2, 0.0);
            assert_eq!(ev.last().unwrap().2, 1.0);
            // Stage III starts where Stage II ended, strictly inside (0, 1).
            let refine_start = ev.iter().find(|e| e.0 == 3).unwrap();
            assert_eq!(refine_start.1, 0.0);
            assert!(
                refine_start.2 > 0.0 && refine_start.2 < 1.0,
                "{refine_start:?}"
            );
            let (mut p, mut d) = (9, 9);
            assert_eq!(
                ttpo_job_get_choice(job, &mut p, &mut d),
                TTPO_STATUS_OK as u32
            );
            assert_eq!((p, d), (0, 1), "the callback's choice was used");
            assert!(
                auto.0 < 2 && auto.1 < 2 && auto != (9, 9),
                "the callback saw the automatic choice"
            );
            ttpo_job_free(job);
            ttpo_engine_free(engine);
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A restore step: `ttpo_job_size` is the restored size before Stage I, the result has
    /// it, and the input's alpha comes back scaled nearest-neighbour (it is not restored).
    #[test]
    fn a_restore_step_outputs_the_larger_size_with_the_alpha_scaled() {
        let _alone = RUNS.lock();
        let assets = std::env::var_os("TTPO_ASSETS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/assets")
            });
        let restore_dir = CString::new(assets.join("restore").to_str().unwrap()).unwrap();
        let (dir, engine) = unsafe { tiny_engine("restore") };
        unsafe {
            let mut pixels = vec![0u8; 16 * 16 * 4];
            for (i, p) in pixels.iter_mut().enumerate() {
                *p = (i * 7 % 251) as u8;
            }
            let o = ttpo_options_new();
            assert_eq!(ttpo_options_set_steps(o, 2), TTPO_STATUS_OK as u32);
            assert_eq!(
                ttpo_options_set_strengths(o, [0.4].as_ptr(), 1),
                TTPO_STATUS_OK as u32
            );
            assert_eq!(
                ttpo_options_set_metrics(o, c"sharpness".as_ptr()),
                TTPO_STATUS_OK as u32
            );
            assert_eq!(
                ttpo_options_set_restore(o, c"rdn-x2".as_ptr()),
                TTPO_STATUS_OK as u32
            );
            assert_eq!(
                ttpo_options_set_restore_dir(o, restore_dir.as_ptr()),
                TTPO_STATUS_OK as u32
            );
            let mut job = std::ptr::null_mut();
            let st = ttpo_job_new(engine, o, &image(&mut pixels), &mut job);
            ttpo_options_free(o);
            assert_eq!(st, TTPO_STATUS_OK as u32, "{}", job_error(job));
            let (mut w, mut h) = (0, 0);
            assert_eq!(ttpo_job_size(job, &mut w, &mut h), TTPO_STATUS_OK as u32);
            assert_eq!((w, h), (32, 32), "the restored size before Stage I");
            let mut out = vec![0u8; 32 * 32 * 4];
            let mut view = image(&mut out);
            (view.width, view.height, view.stride) = (32, 32, 128);
            assert_eq!(
                ttpo_job_run(job, &view),
                TTPO_STATUS_OK as u32,
                "{}",
                job_error(job)
            );
            for y in 0..32 {
                for x in 0..32 {
                    let a_in = pixels[((y / 2) * 16 + x / 2) * 4 + 3];
                    assert_eq!(out[(y * 32 + x) * 4 + 3], a_in, "alpha at ({x}, {y})");
                }
            }
            // A 16x16 buffer is the input's size, not the output's: a clear error.
            let mut small = vec![0u8; 16 * 16 * 4];
            assert_ne!(
                ttpo_job_refine(job, &image(&mut small)),
                TTPO_STATUS_OK as u32
            );
            assert!(job_error(job).contains("32x32"), "{}", job_error(job));
            ttpo_job_free(job);
            ttpo_engine_free(engine);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
