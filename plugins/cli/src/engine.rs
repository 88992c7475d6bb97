//! The model and engine a command runs on: the model spec from the global options, and
//! loading it with messages that say how to fix a broken model.

use crate::args::{Global, JobArgs};
use crate::error::{CliError, CliResult};
use crate::models::{self, ModelSpec};
use crate::ui::{self, ProgressMode};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use ttpo::{Engine, EngineConfig};

/// Model spec from the global options: --model-dir > --model > $TTPO_MODEL_DIR > default.
pub fn model_spec(g: &Global, repo_override: Option<String>) -> ModelSpec {
    let env_dir = std::env::var_os("TTPO_MODEL_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let explicit_repo = repo_override.or_else(|| g.model.clone());
    let dir = match (&g.model_dir, &explicit_repo) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(_)) => None,
        (None, None) => env_dir,
    };
    ModelSpec {
        dir,
        repo: explicit_repo.unwrap_or_else(|| models::DEFAULT_REPO.to_string()),
        revision: g.revision.clone(),
        offline: g.offline || models::offline_from_env(),
        fp16: !g.full_weights,
        progress: ui::progress_mode(g),
    }
}

/// A loaded engine, with where it came from and how long loading took.
pub struct Loaded {
    pub engine: Arc<Engine>,
    pub dir: PathBuf,
    pub spec: ModelSpec,
    pub seconds: f64,
}

/// Resolves the model (downloading it unless offline) and loads it on the job's device.
pub fn load(g: &Global, job: &JobArgs) -> CliResult<Loaded> {
    let spec = model_spec(g, None);
    let dir = models::resolve(&spec)?;
    // Candidate-only models: an existing folder is taken as one, anything else is a repo
    // id resolved like --model (cache, else download unless offline) at the default revision
    // (--revision names the main model's).
    let mut dirs = vec![dir.clone()];
    for m in &job.candidate_models {
        let path = PathBuf::from(m);
        let extra = if path.is_dir() {
            path
        } else {
            let mut s = spec.clone();
            s.dir = None;
            s.repo = m.clone();
            s.revision = models::DEFAULT_REVISION.to_string();
            models::resolve(&s)?
        };
        dirs.push(extra);
    }
    let config = EngineConfig {
        device: job.device()?,
        precision: job.precision(),
        ..Default::default()
    };
    if ui::progress_mode(g).resolve() != ProgressMode::None {
        for d in &dirs {
            eprintln!("loading model {}", d.display());
        }
    }
    let t0 = Instant::now();
    let engine = Engine::load(&dirs, &config).map_err(|e| {
        let corrupt = matches!(e, ttpo::Error::Weights { .. } | ttpo::Error::InvalidFile { .. });
        let mut err = CliError::from(e);
        if corrupt {
            let fix = if spec.dir.is_some() {
                "check the file (`ttpo models verify --model-dir DIR`)".to_string()
            } else {
                format!(
                    "the file is corrupt or truncated; fetch it again with `ttpo models download {} --force`",
                    spec.repo
                )
            };
            err.message = format!("{} ({fix})", err.message);
        }
        err
    })?;
    Ok(Loaded {
        engine: Arc::new(engine),
        dir,
        spec,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
