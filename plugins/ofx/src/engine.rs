//! libttpo, loaded at run time with libloading (the plug-in never links it), one engine per
//! process shared by every instance, and the result cache.

use std::collections::{HashMap, VecDeque};
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

// The C ABI comes from ttpo-sys (checked against include/ttpo.h), never copied here.
use ttpo_sys::{
    pfn, ttpo_engine as Engine, ttpo_job as Job, TTPO_ABI_VERSION, TTPO_STATUS_CANCELLED,
    TTPO_STATUS_INVALID_ARGUMENT, TTPO_STATUS_OK as STATUS_OK,
};
pub use ttpo_sys::{
    ttpo_image as TtpoImage, TTPO_FORMAT_F32 as FORMAT_F32, TTPO_FORMAT_U16 as FORMAT_U16,
    TTPO_FORMAT_U8 as FORMAT_U8, TTPO_LAYOUT_RGB as LAYOUT_RGB, TTPO_LAYOUT_RGBA as LAYOUT_RGBA,
    TTPO_STATUS_MODEL_NOT_FOUND,
};

/// The libttpo functions the plug-in calls.
pub struct Api {
    _lib: libloading::Library,
    #[allow(dead_code)]
    pub path: PathBuf,
    engine_new: pfn::ttpo_engine_new,
    engine_free: pfn::ttpo_engine_free,
    job_new: pfn::ttpo_job_new,
    job_free: pfn::ttpo_job_free,
    job_last_error: pfn::ttpo_job_last_error,
    job_set_progress: pfn::ttpo_job_set_progress_callback,
    job_set_cancel: pfn::ttpo_job_set_cancel_callback,
    job_generate: pfn::ttpo_job_generate_candidates,
    job_candidate_count: pfn::ttpo_job_candidate_count,
    job_candidate_image: pfn::ttpo_job_candidate_image,
    job_choose: pfn::ttpo_job_choose,
    job_choose_auto: pfn::ttpo_job_choose_auto,
    job_refine: pfn::ttpo_job_refine,
    job_progress_overall: pfn::ttpo_job_progress_overall,
    job_estimate: pfn::ttpo_job_estimate,
    job_contact_sheet: pfn::ttpo_job_contact_sheet,
    options_new: pfn::ttpo_options_new,
    options_free: pfn::ttpo_options_free,
    options_set_seed: pfn::ttpo_options_set_seed,
    options_set_steps: pfn::ttpo_options_set_steps,
    options_set_refine_steps: pfn::ttpo_options_set_refine_steps,
    options_set_strengths_str: pfn::ttpo_options_set_strengths_str,
    options_set_metrics: pfn::ttpo_options_set_metrics,
    options_set_restore: pfn::ttpo_options_set_restore,
    restore_count: pfn::ttpo_restore_count,
    restore_name: pfn::ttpo_restore_name,
    restore_scale: pfn::ttpo_restore_scale,
    status_str: pfn::ttpo_status_str,
    last_error: pfn::ttpo_last_error,
    version_api: pfn::ttpo_version_api,
    metric_count: pfn::ttpo_metric_count,
    metric_name: pfn::ttpo_metric_name,
    metric_description: pfn::ttpo_metric_description,
    model_resolve: pfn::ttpo_model_resolve,
    model_default_repo: pfn::ttpo_model_default_repo,
}

/// The file name the loader knows libttpo by: its soname, `libttpo.so.<ABI level>`.
pub fn soname() -> String {
    format!("libttpo.so.{TTPO_ABI_VERSION}")
}

unsafe fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

impl Api {
    unsafe fn open(path: &Path) -> Result<Api, String> {
        let lib = libloading::Library::new(path).map_err(|e| format!("{}: {e}", path.display()))?;
        macro_rules! sym {
            ($name:literal) => {
                *lib.get(concat!($name, "\0").as_bytes())
                    .map_err(|e| format!("{}: missing {}: {e}", path.display(), $name))?
            };
        }
        let api = Api {
            path: path.to_path_buf(),
            engine_new: sym!("ttpo_engine_new"),
            engine_free: sym!("ttpo_engine_free"),
            job_new: sym!("ttpo_job_new"),
            job_free: sym!("ttpo_job_free"),
            job_last_error: sym!("ttpo_job_last_error"),
            job_set_progress: sym!("ttpo_job_set_progress_callback"),
            job_set_cancel: sym!("ttpo_job_set_cancel_callback"),
            job_generate: sym!("ttpo_job_generate_candidates"),
            job_candidate_count: sym!("ttpo_job_candidate_count"),
            job_candidate_image: sym!("ttpo_job_candidate_image"),
            job_choose: sym!("ttpo_job_choose"),
            job_choose_auto: sym!("ttpo_job_choose_auto"),
            job_refine: sym!("ttpo_job_refine"),
            job_progress_overall: sym!("ttpo_job_progress_overall"),
            job_estimate: sym!("ttpo_job_estimate"),
            job_contact_sheet: sym!("ttpo_job_contact_sheet"),
            options_new: sym!("ttpo_options_new"),
            options_free: sym!("ttpo_options_free"),
            options_set_seed: sym!("ttpo_options_set_seed"),
            options_set_steps: sym!("ttpo_options_set_steps"),
            options_set_refine_steps: sym!("ttpo_options_set_refine_steps"),
            options_set_strengths_str: sym!("ttpo_options_set_strengths_str"),
            options_set_metrics: sym!("ttpo_options_set_metrics"),
            options_set_restore: sym!("ttpo_options_set_restore"),
            restore_count: sym!("ttpo_restore_count"),
            restore_name: sym!("ttpo_restore_name"),
            restore_scale: sym!("ttpo_restore_scale"),
            status_str: sym!("ttpo_status_str"),
            last_error: sym!("ttpo_last_error"),
            version_api: sym!("ttpo_version_api"),
            metric_count: sym!("ttpo_metric_count"),
            metric_name: sym!("ttpo_metric_name"),
            metric_description: sym!("ttpo_metric_description"),
            model_resolve: sym!("ttpo_model_resolve"),
            model_default_repo: sym!("ttpo_model_default_repo"),
            _lib: lib,
        };
        let abi = (api.version_api)();
        if abi != TTPO_ABI_VERSION {
            return Err(format!(
                "{}: ABI level {abi}, this plug-in needs {TTPO_ABI_VERSION}",
                path.display()
            ));
        }
        Ok(api)
    }

    /// The built-in Stage II metrics: (name, description), in libttpo's order.
    pub fn metrics(&self) -> Vec<(String, String)> {
        // SAFETY: static strings (or NULL) for any index.
        unsafe {
            (0..(self.metric_count)())
                .map(|i| {
                    (
                        cstr((self.metric_name)(i)),
                        cstr((self.metric_description)(i)),
                    )
                })
                .collect()
        }
    }

    /// libttpo's restoration networks: (name, scale), in its order.
    pub fn restore_networks(&self) -> Vec<(String, u32)> {
        // SAFETY: static strings (or NULL) for any index.
        unsafe {
            (0..(self.restore_count)())
                .map(|i| (cstr((self.restore_name)(i)), (self.restore_scale)(i)))
                .collect()
        }
    }

    /// The Hub id of the default model.
    pub fn model_default_repo(&self) -> String {
        unsafe { cstr((self.model_default_repo)()) }
    }

    /// `ttpo_model_resolve(text, NULL)` (never touches the network): the model's folder, or
    /// the status and libttpo's message.
    pub fn model_resolve(&self, text: &str) -> Result<String, (u32, String)> {
        let c = CString::new(text).map_err(|_| {
            (
                TTPO_STATUS_INVALID_ARGUMENT,
                "a NUL in the text".to_string(),
            )
        })?;
        let fail = |st| (st, unsafe { cstr((self.last_error)()) });
        // A size query, then the path (the cache could change in between: then ask again).
        loop {
            let mut len = 0usize;
            let st = unsafe {
                (self.model_resolve)(
                    c.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null_mut(),
                    0,
                    &mut len,
                )
            };
            if st != STATUS_OK {
                return Err(fail(st));
            }
            let mut buf = vec![0u8; len + 1];
            let st = unsafe {
                (self.model_resolve)(
                    c.as_ptr(),
                    std::ptr::null(),
                    buf.as_mut_ptr() as *mut c_char,
                    buf.len(),
                    &mut len,
                )
            };
            match st {
                STATUS_OK => return Ok(unsafe { cstr(buf.as_ptr() as *const c_char) }),
                TTPO_STATUS_INVALID_ARGUMENT if len + 1 > buf.len() => continue,
                _ => return Err(fail(st)),
            }
        }
    }

    fn err(&self, what: &str, status: u32, job: *const Job) -> EngineError {
        let detail = unsafe {
            let m = if job.is_null() {
                cstr((self.last_error)())
            } else {
                cstr((self.job_last_error)(job))
            };
            if m.is_empty() {
                cstr((self.status_str)(status))
            } else {
                m
            }
        };
        EngineError {
            cancelled: status == TTPO_STATUS_CANCELLED,
            message: format!("{what}: {detail}"),
        }
    }
}

#[derive(Debug)]
pub struct EngineError {
    pub cancelled: bool,
    pub message: String,
}

impl From<String> for EngineError {
    fn from(message: String) -> Self {
        EngineError {
            cancelled: false,
            message,
        }
    }
}

/// The folder of the loaded plug-in binary (`…/Contents/Linux-x86-64`).
fn own_dir() -> Option<PathBuf> {
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(own_dir as *const c_void, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        let p = PathBuf::from(cstr(info.dli_fname));
        let p = std::fs::canonicalize(&p).unwrap_or(p);
        p.parent().map(Path::to_path_buf)
    }
}

static API: Mutex<Option<&'static Api>> = Mutex::new(None);

/// Loads libttpo once per process: `$TTPO_LIBRARY`, else [`soname`] / `libttpo.so` next to
/// the plug-in binary. A failure is not remembered (the next render tries again).
pub fn api() -> Result<&'static Api, String> {
    let mut g = API.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(a) = *g {
        return Ok(a);
    }
    let mut tried = Vec::new();
    let candidates: Vec<PathBuf> = match std::env::var_os("TTPO_LIBRARY").filter(|v| !v.is_empty())
    {
        Some(p) => vec![PathBuf::from(p)],
        None => match own_dir() {
            Some(d) => vec![d.join(soname()), d.join("libttpo.so")],
            None => vec![],
        },
    };
    for c in &candidates {
        if !c.exists() {
            tried.push(format!("{}: no such file", c.display()));
            continue;
        }
        match unsafe { Api::open(c) } {
            Ok(a) => {
                let a: &'static Api = Box::leak(Box::new(a));
                *g = Some(a);
                return Ok(a);
            }
            Err(e) => tried.push(e),
        }
    }
    Err(format!(
        "TTPO cannot load its engine library libttpo (set TTPO_LIBRARY or reinstall the bundle): {}",
        if tried.is_empty() { "plug-in folder unknown".to_string() } else { tried.join("; ") }
    ))
}

struct Ptr<T>(*mut T);
unsafe impl<T> Send for Ptr<T> {}

/// The engine (one per process, for the last model folder asked for; folders come from
/// [`crate::model::resolve`]).
static ENGINE: Mutex<Option<(String, Ptr<Engine>)>> = Mutex::new(None);

fn engine(api: &Api, model_dir: &str) -> Result<*mut Engine, EngineError> {
    let mut g = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((d, p)) = g.as_ref() {
        if d == model_dir {
            return Ok(p.0);
        }
    }
    let c = CString::new(model_dir).map_err(|_| "model folder contains NUL".to_string())?;
    let mut out = std::ptr::null_mut();
    // device AUTO (0), index 0, precision AUTO (0).
    let st = unsafe { (api.engine_new)(c.as_ptr(), 0, 0, 0, &mut out) };
    if st != STATUS_OK {
        return Err(api.err("loading the model", st, std::ptr::null()));
    }
    if let Some((_, old)) = g.replace((model_dir.to_string(), Ptr(out))) {
        unsafe { (api.engine_free)(old.0) } // jobs keep their models alive
    }
    Ok(out)
}

/// Checks the strengths text with libttpo's parser (the one every surface uses).
pub fn check_strengths(api: &Api, text: &str) -> Result<(), String> {
    let c = CString::new(text).map_err(|_| "a NUL in the text".to_string())?;
    // SAFETY: a fresh options object, freed here; `c` outlives the call.
    unsafe {
        let opts = (api.options_new)();
        if opts.is_null() {
            return Err("out of memory".into());
        }
        let st = (api.options_set_strengths_str)(opts, c.as_ptr());
        (api.options_free)(opts);
        if st == STATUS_OK {
            Ok(())
        } else {
            Err(cstr((api.last_error)()))
        }
    }
}

/// What decides the candidates (and the job's refine steps: a job keeps its options).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stage1Key {
    pub input_hash: u64,
    pub width: u32,
    pub height: u32,
    pub model_dir: String,
    pub strengths: String, // as typed (trimmed); parsed by libttpo
    pub seed: u64,
    pub steps: u32,
    pub refine_steps: u32,
    pub metrics: String,
    /// The restoration network run before Stage I and its scale (the outputs are
    /// `width * scale` x `height * scale`), or None.
    pub restore: Option<(&'static str, u32)>,
}

impl Stage1Key {
    /// The size of every output of the job: the input's times the restore scale.
    pub fn output_size(&self) -> (u32, u32) {
        let s = self.restore.map_or(1, |r| r.1);
        (self.width * s, self.height * s)
    }
}

/// Per-call host hooks: abort poll, progress and the time estimate.
pub trait Hooks {
    fn cancelled(&mut self) -> bool;
    fn progress(&mut self, fraction: f64);
    /// Whether to estimate before the next stage (a render shows one estimate, its first).
    fn wants_estimate(&self) -> bool;
    /// What the rest of the job would take: seconds for Stage I, II and III (0 when done).
    fn estimated(&mut self, stage_seconds: [f64; 3]);
}

/// Runs one stage of `job` (`call`) with the host's hooks: the time estimate first, then
/// abort polls and progress during the stage.
unsafe fn run_stage(
    api: &Api,
    job: *mut Job,
    hooks: &mut dyn Hooks,
    call: impl FnOnce(*mut Job) -> u32,
) -> u32 {
    estimate(api, job, hooks);
    let mut ctx = CallCtx {
        hooks,
        job,
        overall: api.job_progress_overall,
    };
    let user = &mut ctx as *mut CallCtx as *mut c_void;
    (api.job_set_cancel)(job, Some(cancel_cb), user);
    (api.job_set_progress)(job, Some(progress_cb), user);
    let st = call(job);
    (api.job_set_cancel)(job, None, std::ptr::null_mut());
    (api.job_set_progress)(job, None, std::ptr::null_mut());
    st
}

/// Asks libttpo what the rest of `job` takes and tells the hooks, before a stage starts.
/// Best effort: a failed estimate only means no estimate is shown.
unsafe fn estimate(api: &Api, job: *mut Job, hooks: &mut dyn Hooks) {
    if !hooks.wants_estimate() {
        return;
    }
    let (mut total, mut stages) = (0.0, [0.0; 3]);
    if (api.job_estimate)(job, &mut total, stages.as_mut_ptr()) == STATUS_OK {
        hooks.estimated(stages);
    }
}

struct CallCtx<'a> {
    hooks: &'a mut dyn Hooks,
    job: *const Job,
    overall: pfn::ttpo_job_progress_overall,
}

unsafe extern "C" fn cancel_cb(user: *mut c_void) -> i32 {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ctx = &mut *(user as *mut CallCtx);
        ctx.hooks.cancelled() as i32
    }))
    .unwrap_or(1)
}

/// The host's bar shows the engine's overall fraction (one weighting of the stages for
/// every adapter, by model calls; see `ttpo_job_progress_overall`).
unsafe extern "C" fn progress_cb(user: *mut c_void, _stage: u32, _s: u32, _t: u32, _f: f64) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ctx = &mut *(user as *mut CallCtx);
        let mut overall = 0.0;
        if (ctx.overall)(ctx.job, &mut overall) == STATUS_OK {
            ctx.hooks.progress(overall.clamp(0.0, 1.0));
        }
    }));
}

/// A choice of candidates: (preferred, dispreferred), or None for the metrics' choice.
pub type Choice = Option<(u32, u32)>;

/// What a view shows of a job for a choice, at the frame's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// Stage III's result (model calls).
    Refined,
    /// libttpo's contact sheet (core's, as the CLI saves it: labelled thumbnails, the
    /// chosen pair framed green and red), drawn into the frame (no model call).
    Sheet,
}

/// A job with its candidates (RGBA f32, top row first) and its outputs by choice. The job
/// stays alive here: refining and drawing the sheet need it.
pub struct Entry {
    job: Ptr<Job>,
    pub candidates: Vec<Arc<Vec<f32>>>,
    outputs: HashMap<(Output, Choice), Arc<Vec<f32>>>,
}

impl Entry {
    /// Makes `choice` the job's current choice (refinement and the sheet's frames follow it).
    unsafe fn choose(&self, api: &Api, choice: Choice) -> Result<(), EngineError> {
        let n = self.candidates.len() as u32;
        let job = self.job.0;
        let st = match choice {
            None => (api.job_choose_auto)(job),
            Some((p, d)) if p >= n || d >= n => {
                return Err(format!(
                    "preferred/dispreferred index out of range: there are {n} candidates (0..{})",
                    n.saturating_sub(1)
                )
                .into())
            }
            Some((p, d)) => (api.job_choose)(job, p, d),
        };
        if st != STATUS_OK {
            return Err(api.err("choosing candidates", st, job));
        }
        Ok(())
    }
}

pub struct Cache {
    entries: HashMap<Stage1Key, Entry>,
    order: VecDeque<Stage1Key>,
    /// Engine calls made (candidates + refinements): lets tests see cache hits.
    pub engine_calls: u64,
}

const CACHE_ENTRIES: usize = 4;

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// The global render lock: engine work is serialized across instances and threads.
pub fn cache() -> MutexGuard<'static, Option<Cache>> {
    let mut g = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if g.is_none() {
        *g = Some(Cache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            engine_calls: 0,
        });
    }
    g
}

pub fn purge(api: Option<&Api>) {
    let mut g = cache();
    let c = g.as_mut().unwrap();
    for (_, e) in c.entries.drain() {
        if let Some(api) = api {
            unsafe { (api.job_free)(e.job.0) }
        }
    }
    c.order.clear();
}

fn f32_image(buf: &mut [f32], w: u32, h: u32) -> TtpoImage {
    TtpoImage {
        data: buf.as_mut_ptr() as *mut c_void,
        width: w,
        height: h,
        stride: (w as isize) * 16,
        format: FORMAT_F32,
        layout: LAYOUT_RGBA,
    }
}

impl Cache {
    /// Candidates for `key`, computing them if needed. `input` describes the source pixels.
    pub fn candidates(
        &mut self,
        api: &Api,
        key: &Stage1Key,
        input: &TtpoImage,
        hooks: &mut dyn Hooks,
    ) -> Result<&mut Entry, EngineError> {
        if !self.entries.contains_key(key) {
            let eng = engine(api, &key.model_dir)?;
            unsafe {
                let opts = (api.options_new)();
                if opts.is_null() {
                    return Err("out of memory".to_string().into());
                }
                let strengths = CString::new(key.strengths.as_str()).unwrap_or_default();
                let mut st = (api.options_set_seed)(opts, key.seed);
                for s in [
                    (api.options_set_steps)(opts, key.steps),
                    (api.options_set_refine_steps)(opts, key.refine_steps),
                    (api.options_set_strengths_str)(opts, strengths.as_ptr()),
                ] {
                    if st == STATUS_OK {
                        st = s;
                    }
                }
                if st == STATUS_OK && !key.metrics.is_empty() {
                    let m = CString::new(key.metrics.as_str()).unwrap_or_default();
                    st = (api.options_set_metrics)(opts, m.as_ptr());
                }
                if let (STATUS_OK, Some((name, scale))) = (st, key.restore) {
                    // The region of definition was computed from the plug-in's copy of the
                    // scales: the library must agree, or the frame would be the wrong size.
                    if !api.restore_networks().contains(&(name.to_string(), scale)) {
                        (api.options_free)(opts);
                        return Err(format!(
                            "this libttpo has no {scale}x network {name:?} (it has: {:?})",
                            api.restore_networks()
                        )
                        .into());
                    }
                    let n = CString::new(name).unwrap_or_default();
                    st = (api.options_set_restore)(opts, n.as_ptr());
                }
                if st != STATUS_OK {
                    (api.options_free)(opts);
                    return Err(api.err("invalid parameters", st, std::ptr::null()));
                }
                let mut job = std::ptr::null_mut();
                let st = (api.job_new)(eng, opts, input, &mut job);
                (api.options_free)(opts);
                if st != STATUS_OK {
                    return Err(api.err("creating the job", st, std::ptr::null()));
                }
                self.engine_calls += 1;
                let st = run_stage(api, job, hooks, |job| (api.job_generate)(job));
                if st != STATUS_OK {
                    let e = api.err("making candidates", st, job);
                    (api.job_free)(job);
                    return Err(e);
                }
                let mut n = 0u32;
                (api.job_candidate_count)(job, &mut n);
                let mut cands = Vec::with_capacity(n as usize);
                let (w, h) = key.output_size();
                for i in 0..n {
                    let mut buf = vec![0f32; (w * h * 4) as usize];
                    let img = f32_image(&mut buf, w, h);
                    let st = (api.job_candidate_image)(job, i, &img);
                    if st != STATUS_OK {
                        let e = api.err("reading a candidate", st, job);
                        (api.job_free)(job);
                        return Err(e);
                    }
                    cands.push(Arc::new(buf));
                }
                if self.order.len() >= CACHE_ENTRIES {
                    if let Some(old) = self.order.pop_front() {
                        if let Some(e) = self.entries.remove(&old) {
                            (api.job_free)(e.job.0);
                        }
                    }
                }
                self.order.push_back(key.clone());
                self.entries.insert(
                    key.clone(),
                    Entry {
                        job: Ptr(job),
                        candidates: cands,
                        outputs: HashMap::new(),
                    },
                );
            }
        } else if let Some(pos) = self.order.iter().position(|k| k == key) {
            let k = self.order.remove(pos).unwrap();
            self.order.push_back(k);
        }
        Ok(self.entries.get_mut(key).unwrap())
    }

    /// What view `what` shows for `choice` (None = the metrics' choice), computing the
    /// candidates and then the output if needed.
    pub fn output(
        &mut self,
        api: &Api,
        key: &Stage1Key,
        input: &TtpoImage,
        what: Output,
        choice: Choice,
        hooks: &mut dyn Hooks,
    ) -> Result<Arc<Vec<f32>>, EngineError> {
        let entry = self.candidates(api, key, input, hooks)?;
        if let Some(r) = entry.outputs.get(&(what, choice)) {
            return Ok(r.clone());
        }
        let job = entry.job.0;
        let (w, h) = key.output_size();
        let mut buf = vec![0f32; (w * h * 4) as usize];
        let img = f32_image(&mut buf, w, h);
        unsafe {
            entry.choose(api, choice)?;
            match what {
                Output::Refined => {
                    let st = run_stage(api, job, hooks, |job| (api.job_refine)(job, &img));
                    self.engine_calls += 1;
                    if st != STATUS_OK {
                        return Err(api.err("refining", st, job));
                    }
                }
                Output::Sheet => {
                    let st = (api.job_contact_sheet)(job, &img);
                    if st != STATUS_OK {
                        return Err(api.err("drawing the contact sheet", st, job));
                    }
                }
            }
        }
        let r = Arc::new(buf);
        if let Some(entry) = self.entries.get_mut(key) {
            entry.outputs.insert((what, choice), r.clone());
        }
        Ok(r)
    }
}

/// The library if it is already loaded (never loads it).
pub fn loaded() -> Option<&'static Api> {
    *API.lock().unwrap_or_else(|e| e.into_inner())
}
