//! The render action and the actions around it (identity, regions of definition and of
//! interest): read the
//! parameters, resolve the model, get candidates / the refined result from the cache (the
//! job's life cycle is engine.rs'), then write the render window mixed with the input.
//! An instance keeps no state of its own: the results live in the process-wide cache,
//! keyed by what decides them, so instances showing the same frame share them.

use std::ffi::{c_int, CString};
use std::sync::Arc;

use crate::image::Image;
use crate::ofx::*;
use crate::params::{self, Params};
use crate::suites::{post_error, post_log, Props, Suites};
use crate::{engine, model, pixels};

/// The host's abort poll and progress bar for one render.
struct HostHooks {
    s: Suites,
    effect: Handle,
    started: bool,
    user_cancel: bool,
    /// Whether this render refines (counts Stage III in the estimate).
    refines: bool,
    /// The progress bar's label: "TTPO", or with the estimate "TTPO: about 3 min 20 s".
    label: Option<CString>,
}

impl engine::Hooks for HostHooks {
    fn cancelled(&mut self) -> bool {
        self.user_cancel || unsafe { (self.s.effect.abort)(self.effect) } != 0
    }
    fn progress(&mut self, f: f64) {
        if let Some(p) = self.s.progress {
            unsafe {
                if !self.started {
                    let label = self.label.as_deref().unwrap_or(c"TTPO");
                    self.started = (p.progress_start)(self.effect, label.as_ptr()) == STAT_OK;
                }
                if self.started && (p.progress_update)(self.effect, f) == STAT_REPLY_NO {
                    self.user_cancel = true;
                }
            }
        }
    }

    fn wants_estimate(&self) -> bool {
        self.label.is_none()
    }
    fn estimated(&mut self, stage_seconds: [f64; 3]) {
        // Candidates are Stage I + II; Stage III only when this render refines.
        let stages = if self.refines { 3 } else { 2 };
        let text = format!(
            "TTPO: about {}",
            describe_duration(stage_seconds[..stages].iter().sum())
        );
        unsafe { post_log(&self.s, self.effect, &text) };
        self.label = CString::new(text).ok();
    }
}

/// A duration as core's `ttpo::Estimate::describe` writes it ("45 s", "3 min 20 s",
/// "1 h 05 min"); the plug-in does not link core, so it has its own copy of the format.
fn describe_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "unknown".into();
    }
    let s = seconds.round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

impl Drop for HostHooks {
    fn drop(&mut self) {
        if let (true, Some(p)) = (self.started, self.s.progress) {
            unsafe { (p.progress_end)(self.effect) };
        }
    }
}

enum Failure {
    Error(String),
    Cancelled,
}

/// The render action: a failure posts a persistent error (an abort posts nothing); a
/// success clears it.
pub unsafe fn render(s: &Suites, effect: Handle, in_args: Handle) -> OfxStatus {
    match render_inner(s, effect, in_args) {
        Ok(()) => {
            if let Some(m2) = s.msg2 {
                (m2.clear_persistent_message)(effect);
            }
            STAT_OK
        }
        Err(Failure::Cancelled) => STAT_FAILED,
        Err(Failure::Error(m)) => {
            post_error(s, effect, &m);
            STAT_FAILED
        }
    }
}

/// `OfxPropTime` of an action's in-arguments (0 when absent).
fn time(s: &Suites, in_args: Handle) -> f64 {
    Props {
        s: s.prop,
        h: in_args,
    }
    .get_dbl("OfxPropTime", 0)
    .unwrap_or(0.0)
}

unsafe fn render_inner(s: &Suites, effect: Handle, in_args: Handle) -> Result<(), Failure> {
    let ia = Props {
        s: s.prop,
        h: in_args,
    };
    let t = time(s, in_args);
    let scale = ia
        .get_dbl("OfxImageEffectPropRenderScale", 0)
        .unwrap_or(1.0);
    let draft = ia
        .get_int("OfxImageEffectPropRenderQualityDraft", 0)
        .unwrap_or(0)
        != 0
        || scale < 0.999;
    let mut win = [0i32; 4];
    for (i, w) in win.iter_mut().enumerate() {
        *w = ia
            .get_int("OfxImageEffectPropRenderWindow", i as c_int)
            .unwrap_or(if i < 2 { i32::MIN } else { i32::MAX });
    }
    let p = params::read(s, effect, t).map_err(Failure::Error)?;
    let src = Image::fetch(s, effect, CLIP_SOURCE, t).map_err(Failure::Error)?;
    let out = Image::fetch(s, effect, CLIP_OUTPUT, t).map_err(Failure::Error)?;
    if p.steps < 1 {
        return Err(Failure::Error("Steps must be at least 1".into()));
    }
    let api = engine::api().map_err(Failure::Error)?;
    // The library is loaded now: the instance's metrics hint lists its metrics.
    params::set_hint(s, effect, params::P_METRICS, &params::metrics_hint(api));
    let strengths = p.strengths.trim().to_string();
    engine::check_strengths(api, &strengths)
        .map_err(|e| Failure::Error(format!("Strengths {:?}: {e}", p.strengths)))?;
    let model_dir = model::resolve(api, &p.model).map_err(Failure::Error)?;
    let restore = params::restore_choice(p.restore).map_err(Failure::Error)?;
    let key = stage1_key(&p, &src, model_dir, strengths, draft, restore);
    let result = compute(s, effect, api, &p, &key, &src)?;
    write_output(
        &p,
        &src,
        &out,
        win,
        &result,
        key.restore.map_or(1, |r| r.1 as i32),
    );
    Ok(())
}

/// What decides the candidates; draft renders take a quarter of the steps.
fn stage1_key(
    p: &Params,
    src: &Image,
    model_dir: String,
    strengths: String,
    draft: bool,
    restore: Option<(&'static str, u32)>,
) -> engine::Stage1Key {
    let steps = |n: i32| {
        let n = n.max(1) as u32;
        if draft {
            n.div_ceil(4)
        } else {
            n
        }
    };
    engine::Stage1Key {
        input_hash: src.content_hash(),
        width: src.width() as u32,
        height: src.height() as u32,
        model_dir,
        strengths,
        seed: p.seed.max(0) as u64,
        steps: steps(p.steps),
        refine_steps: steps(if p.refine_steps > 0 {
            p.refine_steps
        } else {
            p.steps
        }),
        metrics: p.metrics.clone(),
        restore,
    }
}

/// The view's pixels (RGBA f32, top row first), from the cache or the engine.
unsafe fn compute(
    s: &Suites,
    effect: Handle,
    api: &'static engine::Api,
    p: &Params,
    key: &engine::Stage1Key,
    src: &Image,
) -> Result<Arc<Vec<f32>>, Failure> {
    let input = src.ttpo();
    let mut hooks = HostHooks {
        s: *s,
        effect,
        started: false,
        user_cancel: false,
        refines: p.view == 0,
        label: None,
    };
    if engine::Hooks::cancelled(&mut hooks) {
        return Err(Failure::Cancelled);
    }
    let mut g = engine::cache();
    let cache = g.as_mut().unwrap();
    let conv = |e: engine::EngineError| {
        if e.cancelled {
            Failure::Cancelled
        } else {
            Failure::Error(format!("TTPO: {}", e.message))
        }
    };
    Ok(match p.view {
        1 => cache
            .output(
                api,
                key,
                &input,
                engine::Output::Sheet,
                choice(p)?,
                &mut hooks,
            )
            .map_err(conv)?,
        2 => {
            let e = cache
                .candidates(api, key, &input, &mut hooks)
                .map_err(conv)?;
            let n = e.candidates.len();
            e.candidates
                .get(p.candidate.max(0) as usize)
                .cloned()
                .ok_or_else(|| {
                    Failure::Error(format!(
                        "Candidate {} does not exist: there are {n} (0..{})",
                        p.candidate,
                        n.saturating_sub(1)
                    ))
                })?
        }
        _ => cache
            .output(
                api,
                key,
                &input,
                engine::Output::Refined,
                choice(p)?,
                &mut hooks,
            )
            .map_err(conv)?,
    })
}

/// The choice the parameters make: the manual pair, or None for the metrics' choice.
fn choice(p: &Params) -> Result<engine::Choice, Failure> {
    let choice = p
        .manual
        .then_some((p.preferred.max(0) as u32, p.dispreferred.max(0) as u32));
    match choice {
        Some((a, b)) if a == b => Err(Failure::Error(
            "Preferred and Dispreferred must differ".into(),
        )),
        _ => Ok(choice),
    }
}

/// Writes the render window (clipped to the output), mixing with the input. With a restore
/// step the result covers the source's bounds times `scale` (the region of definition) and
/// the mix blends with the source pixel each result pixel came from (nearest).
fn write_output(p: &Params, src: &Image, out: &Image, win: [i32; 4], result: &[f32], scale: i32) {
    let w = src.width() * scale as usize;
    let r_bounds = src.bounds.map(|b| b * scale);
    let mix = p.mix.clamp(0.0, 1.0) as f32;
    let (x1, y1) = (win[0].max(out.bounds[0]), win[1].max(out.bounds[1]));
    let (x2, y2) = (win[2].min(out.bounds[2]), win[3].min(out.bounds[3]));
    for y in y1..y2 {
        for x in x1..x2 {
            let inside = x >= r_bounds[0] && x < r_bounds[2] && y >= r_bounds[1] && y < r_bounds[3];
            let v = if inside {
                let r = (r_bounds[3] - 1 - y) as usize;
                let i = (r * w + (x - r_bounds[0]) as usize) * 4;
                let mut v = [result[i], result[i + 1], result[i + 2], result[i + 3]];
                if mix < 1.0 {
                    let (sx, sy) = (x.div_euclid(scale), y.div_euclid(scale));
                    // SAFETY: (sx, sy) is inside the source image.
                    let a = unsafe { pixels::read(src.at(sx, sy), src.depth, src.comps) };
                    for c in 0..3 {
                        v[c] = a[c] + mix * (v[c] - a[c]);
                    }
                    v[3] = a[3];
                }
                v
            } else {
                [0.0; 4]
            };
            // SAFETY: (x, y) is inside the output image (the window is clipped to it).
            unsafe { pixels::write(out.at(x, y), out.depth, out.comps, v) };
        }
    }
}

/// Mix 0 is the identity (the host may skip the render and pass the source through),
/// unless a restore step makes the output larger than the source.
pub unsafe fn is_identity(
    s: &Suites,
    effect: Handle,
    in_args: Handle,
    out_args: Handle,
) -> OfxStatus {
    let t = time(s, in_args);
    if !matches!(params::restore(s, effect, t), Ok(None)) {
        return STAT_REPLY_DEFAULT;
    }
    match params::mix(s, effect, t) {
        Ok(m) if m <= 0.0 => {
            Props {
                s: s.prop,
                h: out_args,
            }
            .set_str("OfxPropName", 0, "Source");
            STAT_OK
        }
        _ => STAT_REPLY_DEFAULT,
    }
}

/// The source clip's region of definition at time `t`.
unsafe fn source_rod(s: &Suites, effect: Handle, t: f64) -> Option<OfxRectD> {
    let mut ch = std::ptr::null_mut();
    if (s.effect.clip_get_handle)(effect, CLIP_SOURCE.as_ptr(), &mut ch, std::ptr::null_mut())
        != STAT_OK
    {
        return None;
    }
    let mut rod = OfxRectD::default();
    ((s.effect.clip_get_region_of_definition)(ch, t, &mut rod) == STAT_OK).then_some(rod)
}

/// With a restore step the output is the source's region of definition times the network's
/// scale (canonical coordinates, so at any render scale); without one the host's default
/// (the source's region) holds.
pub unsafe fn region_of_definition(
    s: &Suites,
    effect: Handle,
    in_args: Handle,
    out_args: Handle,
) -> OfxStatus {
    let t = time(s, in_args);
    let Ok(Some((_, scale))) = params::restore(s, effect, t) else {
        return STAT_REPLY_DEFAULT;
    };
    let Some(rod) = source_rod(s, effect, t) else {
        return STAT_REPLY_DEFAULT;
    };
    let o = Props {
        s: s.prop,
        h: out_args,
    };
    let f = scale as f64;
    for (i, v) in [rod.x1, rod.y1, rod.x2, rod.y2].into_iter().enumerate() {
        o.set_dbl("OfxImageEffectPropRegionOfDefinition", i as c_int, v * f);
    }
    STAT_OK
}

/// The engine needs the whole source frame whatever the render window.
pub unsafe fn regions_of_interest(
    s: &Suites,
    effect: Handle,
    in_args: Handle,
    out_args: Handle,
) -> OfxStatus {
    let Some(rod) = source_rod(s, effect, time(s, in_args)) else {
        return STAT_REPLY_DEFAULT;
    };
    let o = Props {
        s: s.prop,
        h: out_args,
    };
    for (i, v) in [rod.x1, rod.y1, rod.x2, rod.y2].into_iter().enumerate() {
        o.set_dbl("OfxImageClipPropRoI_Source", i as c_int, v);
    }
    STAT_OK
}

#[cfg(test)]
mod tests {
    use super::describe_duration;

    /// The cases of core's `Estimate::describe` test: the two must read the same.
    #[test]
    fn durations_read_as_core_writes_them() {
        assert_eq!(describe_duration(0.4), "0 s");
        assert_eq!(describe_duration(45.0), "45 s");
        assert_eq!(describe_duration(59.4), "59 s");
        assert_eq!(describe_duration(59.6), "1 min 00 s");
        assert_eq!(describe_duration(200.0), "3 min 20 s");
        assert_eq!(describe_duration(3900.0), "1 h 05 min");
        assert_eq!(describe_duration(f64::NAN), "unknown");
        assert_eq!(describe_duration(-1.0), "unknown");
    }
}
