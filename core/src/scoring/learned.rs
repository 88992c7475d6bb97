//! Where the learned metrics' weights come from, and the metric presets.
//!
//! MUSIQ, MANIQA and TOPIQ-NR read pyiqa's published checkpoints (PyTorch `.pth` files) as
//! they are: the file names below are pyiqa's, in the Hugging Face repo [`IQA_REPO`]. A
//! user who ran pyiqa already has them in its cache (`$TORCH_HOME/hub/pyiqa`, default
//! `~/.cache/torch/hub/pyiqa`); the CLI's model manager fetches them into the Hugging Face
//! cache on first use (`ttpo models download --metrics ...`).
//!
//! Lookup: the `iqa_model_dir` option when set (and nothing else, so a test or a studio
//! pins its files); else `$TTPO_IQA_DIR`, `~/.local/share/ttpo/iqa`, pyiqa's cache, and the
//! folder an adapter resolved from the Hugging Face cache (`extra`) — first hit wins.
//!
//! Presets name sets of metrics: `reproduction` is the public reproduction's fusion
//! (MUSIQ, MANIQA and Q-Align, z-scored). Q-Align is a 7-billion-parameter multimodal
//! language model (mPLUG-Owl2 on LLaMA-2): about 16 GB of weights in half precision and a
//! LLaMA-2 licence, far too large to live inside GIMP or a compositor. TOPIQ-NR (a
//! ResNet-50, about 0.1 GB) stands in for it: a light learned metric trained on KonIQ, the
//! set of the reproduction's other two. Its weights are pyiqa's own work, licensed for
//! non-commercial use only ([`Checkpoint::licence`]); docs/METRICS.md has the details.

use super::ScoringOptions;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The Hugging Face repo holding pyiqa's published checkpoints.
pub const IQA_REPO: &str = "chaofengc/IQA-PyTorch-Weights";

/// A learned metric's checkpoint: the metric's name, pyiqa's metric name it matches, and
/// the published file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The metric's name in TTPO (`musiq`, ...).
    pub metric: &'static str,
    /// pyiqa's name for the same metric and weights (`pyiqa.create_metric(name)`).
    pub pyiqa_name: &'static str,
    /// The file name in [`IQA_REPO`] (and in pyiqa's cache).
    pub file: &'static str,
    /// The licence of the trained weights, for listings.
    pub licence: &'static str,
}

/// The learned metrics' checkpoints (KonIQ-10k-trained, like pyiqa's defaults).
pub const CHECKPOINTS: &[Checkpoint] = &[
    Checkpoint {
        metric: "musiq",
        pyiqa_name: "musiq",
        file: "musiq_koniq_ckpt-e95806b9.pth",
        licence:
            "Apache-2.0 (google-research/musiq's KonIQ checkpoint, converted to PyTorch by pyiqa)",
    },
    Checkpoint {
        metric: "maniqa",
        pyiqa_name: "maniqa",
        file: "ckpt_koniq10k.pt",
        licence: "Apache-2.0 (IIGROUP/MANIQA's KonIQ checkpoint)",
    },
    Checkpoint {
        metric: "topiq",
        pyiqa_name: "topiq_nr",
        file: "cfanet_nr_koniq_res50-9a73138b.pth",
        licence: "PolyForm Noncommercial 1.0.0 (pyiqa's own model: non-commercial use only)",
    },
];

/// The checkpoint of learned metric `metric`, if it is one.
pub fn checkpoint(metric: &str) -> Option<&'static Checkpoint> {
    CHECKPOINTS.iter().find(|c| c.metric == metric)
}

/// A named set of metrics (accepted wherever metric names are).
#[derive(Debug)]
pub struct Preset {
    /// The name used in place of a metric name.
    pub name: &'static str,
    /// The metrics it stands for.
    pub metrics: &'static [&'static str],
    /// One line for people.
    pub description: &'static str,
}

/// The metric presets.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "reproduction",
        metrics: &["musiq", "maniqa", "topiq"],
        description: "the public reproduction's preference-aligned fusion: MUSIQ + MANIQA + TOPIQ-NR (in place of the 7B Q-Align), z-scored; needs their pyiqa checkpoints",
    },
    Preset {
        name: "classical",
        metrics: &["niqe", "piqe"],
        description: "the model-free default: NIQE + PIQE",
    },
];

/// `names` with every preset replaced by its metrics (first occurrence kept, order kept).
pub fn expand(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let parts: Vec<&str> = match PRESETS.iter().find(|p| p.name == n) {
            Some(p) => p.metrics.to_vec(),
            None => vec![n.as_str()],
        };
        for p in parts {
            if !out.iter().any(|o| o == p) {
                out.push(p.to_string());
            }
        }
    }
    out
}

fn env_dir(key: &str) -> Option<PathBuf> {
    std::env::var_os(key)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The folders searched for checkpoints when `iqa_model_dir` is not set, in order.
pub fn default_dirs() -> Vec<PathBuf> {
    let home = env_dir("HOME");
    let mut dirs = Vec::new();
    if let Some(d) = env_dir("TTPO_IQA_DIR") {
        dirs.push(d);
    }
    if let Some(d) =
        env_dir("XDG_DATA_HOME").or_else(|| home.as_ref().map(|h| h.join(".local/share")))
    {
        dirs.push(d.join("ttpo/iqa"));
    }
    // pyiqa's own download folder (torch.hub's dir + "pyiqa").
    if let Some(d) = env_dir("TORCH_HOME").map(|t| t.join("hub")).or_else(|| {
        env_dir("XDG_CACHE_HOME")
            .or_else(|| home.as_ref().map(|h| h.join(".cache")))
            .map(|c| c.join("torch/hub"))
    }) {
        dirs.push(d.join("pyiqa"));
    }
    dirs
}

/// The checkpoint file of learned metric `metric` for these options: in `iqa_model_dir`
/// when it is set, else the first of [`default_dirs`] that has it. A missing file is
/// [`Error::MissingFile`] naming the file, the repo and how to fetch it.
pub fn checkpoint_path(options: &ScoringOptions, metric: &str) -> Result<PathBuf> {
    let c = checkpoint(metric)
        .ok_or_else(|| Error::option("metrics", format!("{metric} is not a learned metric")))?;
    let dirs: Vec<PathBuf> = match &options.iqa_model_dir {
        Some(d) => vec![d.clone()],
        None => default_dirs(),
    };
    if let Some(found) = dirs.iter().map(|d| d.join(c.file)).find(|p| p.is_file()) {
        return Ok(found);
    }
    let first = dirs
        .first()
        .map(|d| d.join(c.file))
        .unwrap_or_else(|| Path::new(c.file).to_path_buf());
    let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(Error::MissingFile {
        path: first,
        hint: format!(
            "{metric} needs pyiqa's checkpoint {} (Hugging Face repo {IQA_REPO}; weights {}); \
             fetch it with `ttpo models download --metrics {metric}`, or copy it into iqa_model_dir \
             (searched: {})",
            c.file,
            c.licence,
            searched.join(", ")
        ),
    })
}

/// The checkpoints of the chosen learned metrics when one of them is in none of the
/// folders looked in (all of them, since an adapter that fetches them points
/// `iqa_model_dir` at one folder, which is then the only one used); empty when all are
/// found or when `iqa_model_dir` is set (its own errors name what is missing there).
pub fn to_fetch(options: &ScoringOptions) -> Vec<&'static Checkpoint> {
    if options.iqa_model_dir.is_some() {
        return Vec::new();
    }
    let chosen: Vec<&'static Checkpoint> = expand(&options.metrics)
        .iter()
        .filter_map(|m| checkpoint(m))
        .collect();
    if chosen
        .iter()
        .all(|c| checkpoint_path(options, c.metric).is_ok())
    {
        return Vec::new();
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_expand_in_order_without_repeats() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            expand(&v(&["reproduction"])),
            v(&["musiq", "maniqa", "topiq"])
        );
        assert_eq!(
            expand(&v(&["piqe", "reproduction", "musiq", "classical"])),
            v(&["piqe", "musiq", "maniqa", "topiq", "niqe"])
        );
        assert_eq!(expand(&v(&["sharpness"])), v(&["sharpness"]));
    }

    #[test]
    fn a_set_folder_is_the_only_place_looked_in() {
        let dir = std::env::temp_dir().join(format!("ttpo-iqa-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let o = ScoringOptions {
            iqa_model_dir: Some(dir.clone()),
            ..Default::default()
        };
        let e = checkpoint_path(&o, "musiq").unwrap_err().to_string();
        assert!(
            e.contains("musiq_koniq_ckpt-e95806b9.pth")
                && e.contains(IQA_REPO)
                && e.contains("ttpo models download --metrics musiq"),
            "{e}"
        );
        std::fs::write(dir.join("musiq_koniq_ckpt-e95806b9.pth"), b"x").unwrap();
        assert_eq!(
            checkpoint_path(&o, "musiq").unwrap(),
            dir.join("musiq_koniq_ckpt-e95806b9.pth")
        );
        assert!(checkpoint_path(&o, "niqe").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_preset_names_known_metrics() {
        for p in PRESETS {
            for m in p.metrics {
                assert!(
                    super::super::metric_info(m).is_some() || checkpoint(m).is_some(),
                    "{m}"
                );
            }
        }
    }
}
