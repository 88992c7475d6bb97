//! The effect's parameters: their definitions (describe in context) and reading them, at a
//! render's time, into [`Params`].
//!
//! Names: a parameter that is a job option carries core's option name
//! (`ttpo::options::OPTIONS`: `strengths`, `seed`, `steps`, `refine_steps`, `metrics`,
//! `restore`) and
//! goes to libttpo's setter of that name (`ttpo_options_set_<name>`, see engine.rs); the
//! other parameters are the effect's own (the model, the selection, the view, the mix). The
//! names are saved in host projects and are melt's property names, so they never change
//! (`modelDir` keeps its name although it also takes a Hub id).

use std::ffi::{c_char, CStr};

use crate::ofx::*;
use crate::suites::{c, Props, Suites};

pub const P_MODEL: &str = "modelDir";
pub const P_STRENGTHS: &str = "strengths";
pub const P_SEED: &str = "seed";
pub const P_STEPS: &str = "steps";
pub const P_REFINE_STEPS: &str = "refine_steps";
pub const P_METRICS: &str = "metrics";
pub const P_SELECTION: &str = "selection";
pub const P_PREFERRED: &str = "preferred";
pub const P_DISPREFERRED: &str = "dispreferred";
pub const P_VIEW: &str = "view";
pub const P_CANDIDATE: &str = "candidate";
pub const P_MIX: &str = "mix";
pub const P_RESTORE: &str = "restore";

/// The `restore` choice after "None": libttpo's networks (`ttpo_restore_name`) and their
/// scales (`ttpo_restore_scale`), in libttpo's order. Describe never loads libttpo, so the
/// menu is this copy; a render checks it against the loaded library (engine.rs) and the
/// test host against core's table. A host saves a choice as its index: new networks go at
/// the end, as in core's list.
pub const RESTORE: [(&str, u32); 9] = [
    ("realesrgan-x4", 4),
    ("realesr-animevideov3-x2", 2),
    ("realesr-animevideov3-x4", 4),
    ("rdn-x2", 2),
    ("rdn-x3", 3),
    ("rdn-x4", 4),
    ("rdn-x8", 8),
    ("ffdnet", 1),
    ("ffdnet-gray", 1),
];
const RESTORE_OPTIONS: [&str; 10] = [
    "None",
    RESTORE[0].0,
    RESTORE[1].0,
    RESTORE[2].0,
    RESTORE[3].0,
    RESTORE[4].0,
    RESTORE[5].0,
    RESTORE[6].0,
    RESTORE[7].0,
    RESTORE[8].0,
];

/// The metrics hint while libttpo is not loaded (describe never loads it; see
/// [`crate::render`], which puts the library's list on each instance).
pub const METRICS_HINT: &str = "Quality metrics of Stage II, comma-separated, or a preset \
    (reproduction: the learned metrics MUSIQ, MANIQA and TOPIQ-NR; classical: the default set); \
    empty: the engine's default set. The names libttpo knows are listed here once the effect \
    has rendered.";

enum Kind {
    Text { default: &'static str, folder: bool },
    Int { default: i32, min: i32, max: i32 },
    Choice { options: &'static [&'static str] },
    Double { default: f64, min: f64, max: f64 },
}

struct Def {
    name: &'static str,
    label: &'static str,
    hint: &'static str,
    kind: Kind,
}

/// Every parameter, in the order hosts show them.
const DEFS: &[Def] = &[
    Def {
        name: P_MODEL,
        label: "Model",
        hint: "A model folder (diffusers layout) or a Hugging Face Hub id (org/name) already \
               downloaded with `ttpo models download <id>`; empty: $TTPO_MODEL_DIR, else the \
               default model. A render never downloads a model.",
        kind: Kind::Text {
            default: "",
            folder: true,
        },
    },
    Def {
        name: P_STRENGTHS,
        label: "Strengths",
        hint: "img2img strengths of the candidates, comma-separated, each in [0, 1]",
        kind: Kind::Text {
            default: "0.3,0.6",
            folder: false,
        },
    },
    Def {
        name: P_METRICS,
        label: "Metrics",
        hint: METRICS_HINT,
        kind: Kind::Text {
            default: "",
            folder: false,
        },
    },
    Def {
        name: P_RESTORE,
        label: "Restore first",
        hint: "A restoration network run on the frame before the candidates \
               (super-resolution: the output is 2-8x larger, its region of definition scaled \
               by the factor): realesrgan-x4 for photos (slow), realesr-animevideov3 for \
               animation, rdn (smallest, fastest). Files from $TTPO_RESTORE_DIR, else \
               ~/.local/share/ttpo/restore. None: no restore step.",
        kind: Kind::Choice {
            options: &RESTORE_OPTIONS,
        },
    },
    Def {
        name: P_SEED,
        label: "Seed",
        hint: "All randomness derives from it",
        kind: Kind::Int {
            default: 0,
            min: 0,
            max: i32::MAX,
        },
    },
    Def {
        name: P_STEPS,
        label: "Steps",
        hint: "Sampler steps of the candidates (a quarter of them in draft renders)",
        kind: Kind::Int {
            default: 20,
            min: 1,
            max: 1000,
        },
    },
    Def {
        name: P_REFINE_STEPS,
        label: "Refine steps",
        hint: "Sampler steps of the refinement; 0: as Steps (a quarter in draft renders)",
        kind: Kind::Int {
            default: 0,
            min: 0,
            max: 1000,
        },
    },
    Def {
        name: P_PREFERRED,
        label: "Preferred",
        hint: "Manual selection: index of the preferred candidate (0 = the input)",
        kind: Kind::Int {
            default: 1,
            min: 0,
            max: 64,
        },
    },
    Def {
        name: P_DISPREFERRED,
        label: "Dispreferred",
        hint: "Manual selection: index of the dispreferred candidate",
        kind: Kind::Int {
            default: 0,
            min: 0,
            max: 64,
        },
    },
    Def {
        name: P_CANDIDATE,
        label: "Candidate",
        hint: "View 'Candidate': the index shown",
        kind: Kind::Int {
            default: 0,
            min: 0,
            max: 64,
        },
    },
    Def {
        name: P_SELECTION,
        label: "Selection",
        hint: "Automatic: the metrics choose; Manual: Preferred/Dispreferred",
        kind: Kind::Choice {
            options: &["Automatic", "Manual"],
        },
    },
    Def {
        name: P_VIEW,
        label: "View",
        hint: "Refined result, contact sheet of the candidates, or one candidate",
        kind: Kind::Choice {
            options: &["Refined", "Contact sheet", "Candidate"],
        },
    },
    Def {
        name: P_MIX,
        label: "Mix",
        hint: "Blend with the input: 0 = input, 1 = result",
        kind: Kind::Double {
            default: 1.0,
            min: 0.0,
            max: 1.0,
        },
    },
];

/// Defines every parameter in the param set `ps`; `metrics_hint` replaces [`METRICS_HINT`]
/// when libttpo is already loaded.
pub unsafe fn define(s: &Suites, ps: Handle, metrics_hint: Option<&str>) {
    for d in DEFS {
        let ty = match d.kind {
            Kind::Text { .. } => PARAM_STRING,
            Kind::Int { .. } => PARAM_INTEGER,
            Kind::Choice { .. } => PARAM_CHOICE,
            Kind::Double { .. } => PARAM_DOUBLE,
        };
        let mut h = std::ptr::null_mut();
        (s.param.param_define)(ps, ty.as_ptr(), c(d.name).as_ptr(), &mut h);
        let p = Props { s: s.prop, h };
        p.set_str("OfxPropLabel", 0, d.label);
        let hint = match (d.name, metrics_hint) {
            (P_METRICS, Some(m)) => m,
            _ => d.hint,
        };
        p.set_str("OfxParamPropHint", 0, hint);
        match d.kind {
            Kind::Text { default, folder } => {
                p.set_str("OfxParamPropDefault", 0, default);
                if folder {
                    p.set_str("OfxParamPropStringMode", 0, "OfxParamStringIsDirectoryPath");
                }
            }
            Kind::Int { default, min, max } => {
                p.set_int("OfxParamPropDefault", 0, default);
                p.set_int("OfxParamPropMin", 0, min);
                p.set_int("OfxParamPropMax", 0, max);
                p.set_int("OfxParamPropDisplayMin", 0, min);
                p.set_int("OfxParamPropDisplayMax", 0, max.min(100));
            }
            Kind::Choice { options } => {
                p.set_strs("OfxParamPropChoiceOption", options);
                p.set_int("OfxParamPropDefault", 0, 0);
            }
            Kind::Double { default, min, max } => {
                p.set_dbl("OfxParamPropDefault", 0, default);
                p.set_dbl("OfxParamPropMin", 0, min);
                p.set_dbl("OfxParamPropMax", 0, max);
                p.set_dbl("OfxParamPropDisplayMin", 0, min);
                p.set_dbl("OfxParamPropDisplayMax", 0, max);
            }
        }
        // Everything but the mix is one value per shot.
        if !matches!(d.kind, Kind::Double { .. }) {
            p.set_int("OfxParamPropAnimates", 0, 0);
        }
    }
}

/// The parameters of one render. Fields named after a core option hold that option.
#[derive(Clone, Debug)]
pub struct Params {
    /// `modelDir`: a folder, a Hub id, or empty (see [`crate::model`]).
    pub model: String,
    pub strengths: String,
    pub metrics: String,
    /// `restore`: 0 none, else 1 + an index into [`RESTORE`].
    pub restore: i32,
    pub seed: i32,
    pub steps: i32,
    /// 0 = as `steps`.
    pub refine_steps: i32,
    pub manual: bool,
    pub preferred: i32,
    pub dispreferred: i32,
    pub view: i32,
    pub candidate: i32,
    pub mix: f64,
}

unsafe fn param_handle(s: &Suites, effect: Handle, name: &str) -> Result<Handle, String> {
    let mut ps = std::ptr::null_mut();
    (s.effect.get_param_set)(effect, &mut ps);
    let mut h = std::ptr::null_mut();
    if (s.param.param_get_handle)(ps, c(name).as_ptr(), &mut h, std::ptr::null_mut()) != STAT_OK
        || h.is_null()
    {
        return Err(format!("host has no parameter {name}"));
    }
    Ok(h)
}

/// The value of parameter `name` at time `t`, as the C type `T` the host writes.
unsafe fn get<T: Default>(s: &Suites, e: Handle, name: &str, t: f64) -> Result<T, String> {
    let h = param_handle(s, e, name)?;
    let mut v = T::default();
    if (s.param.param_get_value_at_time)(h, t, &mut v as *mut T) != STAT_OK {
        return Err(format!("cannot read parameter {name}"));
    }
    Ok(v)
}

unsafe fn get_s(s: &Suites, e: Handle, name: &str, t: f64) -> Result<String, String> {
    let v: *mut c_char = get::<Ptr>(s, e, name, t)?.0;
    Ok(if v.is_null() {
        String::new()
    } else {
        CStr::from_ptr(v).to_string_lossy().into_owned()
    })
}

/// A `char *` the host points at its string (`Default` for [`get`]).
#[repr(transparent)]
struct Ptr(*mut c_char);
impl Default for Ptr {
    fn default() -> Self {
        Ptr(std::ptr::null_mut())
    }
}

/// The restore network chosen at time `t`: its name and scale, or None.
pub unsafe fn restore(
    s: &Suites,
    e: Handle,
    t: f64,
) -> Result<Option<(&'static str, u32)>, String> {
    restore_choice(get::<i32>(s, e, P_RESTORE, t)?)
}

/// The network of a `restore` choice index (0 = none).
pub fn restore_choice(index: i32) -> Result<Option<(&'static str, u32)>, String> {
    match index {
        0 => Ok(None),
        i if i > 0 && (i as usize) <= RESTORE.len() => Ok(Some(RESTORE[i as usize - 1])),
        i => Err(format!("Restore first: no choice {i}")),
    }
}

/// The mix at time `t` (the identity action reads only it).
pub unsafe fn mix(s: &Suites, e: Handle, t: f64) -> Result<f64, String> {
    get::<f64>(s, e, P_MIX, t)
}

pub unsafe fn read(s: &Suites, e: Handle, t: f64) -> Result<Params, String> {
    let i = |name| get::<i32>(s, e, name, t);
    Ok(Params {
        model: get_s(s, e, P_MODEL, t)?,
        strengths: get_s(s, e, P_STRENGTHS, t)?,
        metrics: get_s(s, e, P_METRICS, t)?,
        restore: i(P_RESTORE)?,
        seed: i(P_SEED)?,
        steps: i(P_STEPS)?,
        refine_steps: i(P_REFINE_STEPS)?,
        manual: i(P_SELECTION)? == 1,
        preferred: i(P_PREFERRED)?,
        dispreferred: i(P_DISPREFERRED)?,
        view: i(P_VIEW)?,
        candidate: i(P_CANDIDATE)?,
        mix: mix(s, e, t)?,
    })
}

/// Sets the hint of an instance's parameter (hints are writable on instances), unless it
/// already reads `hint`.
pub unsafe fn set_hint(s: &Suites, effect: Handle, name: &str, hint: &str) {
    let Ok(h) = param_handle(s, effect, name) else {
        return;
    };
    let mut props = std::ptr::null_mut();
    if (s.param.param_get_property_set)(h, &mut props) != STAT_OK || props.is_null() {
        return;
    }
    let p = Props {
        s: s.prop,
        h: props,
    };
    if p.get_str("OfxParamPropHint", 0).as_deref() != Some(hint) {
        p.set_str("OfxParamPropHint", 0, hint);
    }
}

/// The metrics hint with libttpo's list of metrics (`ttpo_metric_name`/`_description`),
/// so the effect never repeats the engine's table.
pub fn metrics_hint(api: &crate::engine::Api) -> String {
    let mut h = String::from(
        "Quality metrics of Stage II, comma-separated, or a preset (reproduction: musiq, \
         maniqa, topiq; classical: niqe, piqe); empty: the engine's default set.",
    );
    for (name, description) in api.metrics() {
        h += &format!("\n{name}: {description}");
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_is_defined_once_and_read() {
        let names: Vec<&str> = DEFS.iter().map(|d| d.name).collect();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[..i].contains(n), "{n} defined twice");
        }
        // What `read` reads, in DEFS order.
        let read = [
            P_MODEL,
            P_STRENGTHS,
            P_METRICS,
            P_RESTORE,
            P_SEED,
            P_STEPS,
            P_REFINE_STEPS,
            P_PREFERRED,
            P_DISPREFERRED,
            P_CANDIDATE,
            P_SELECTION,
            P_VIEW,
            P_MIX,
        ];
        assert_eq!(names, read);
    }

    #[test]
    fn restore_choices_are_none_then_the_networks() {
        assert_eq!(RESTORE_OPTIONS[0], "None");
        for (i, (name, scale)) in RESTORE.iter().enumerate() {
            assert_eq!(RESTORE_OPTIONS[i + 1], *name);
            assert_eq!(restore_choice(i as i32 + 1), Ok(Some((*name, *scale))));
        }
        assert_eq!(restore_choice(0), Ok(None));
        assert!(restore_choice(RESTORE.len() as i32 + 1).is_err() && restore_choice(-1).is_err());
    }
}
