//! `ttpo models`: list, download, path and verify models (resolution itself is in
//! `crate::models`, over the ttpo-models crate).

use crate::args::{Global, ModelsCommand};
use crate::engine;
use crate::error::{code, CliError, CliResult};
use crate::models::{self, ModelSpec};
use crate::ui::status;
use serde_json::json;
use std::path::PathBuf;

fn local_model_dir(spec: &ModelSpec) -> CliResult<PathBuf> {
    if let Some(d) = &spec.dir {
        if d.is_dir() {
            return Ok(d.clone());
        }
        return Err(CliError::new(
            code::MODEL_MISSING,
            format!("model folder {} does not exist", d.display()),
        ));
    }
    models::snapshot_dir(&spec.repo, &spec.revision).ok_or_else(|| {
        CliError::new(
            code::MODEL_MISSING,
            format!(
                "model {} ({}) is not in the Hugging Face cache {}; fetch it with `ttpo models download {}` or pass --model-dir DIR",
                spec.repo,
                spec.revision,
                models::hub_cache_dir().display(),
                spec.repo
            ),
        )
    })
}

pub fn run(g: &Global, m: ModelsCommand) -> CliResult<()> {
    match m {
        ModelsCommand::List { json } => {
            let cached = models::list_cached();
            let env_dir = std::env::var_os("TTPO_MODEL_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from);
            let (restore_dir, restore) = restore_nets();
            let iqa = iqa_checkpoints();
            if json {
                println!(
                    "{}",
                    json!({
                        "cache": models::hub_cache_dir(),
                        "models": cached,
                        "restore_dir": restore_dir,
                        "restore": restore,
                        "iqa": iqa,
                        "ttpo_model_dir": env_dir.as_ref().map(|d| json!({
                            "path": d, "missing": models::missing_parts(d),
                        })),
                    })
                );
                return Ok(());
            }
            println!("Hugging Face cache: {}", models::hub_cache_dir().display());
            if cached.is_empty() {
                println!(
                    "  (no models; `ttpo models download {}` fetches the default)",
                    models::DEFAULT_REPO
                );
            }
            for c in &cached {
                let state = if c.complete {
                    "complete".to_string()
                } else {
                    format!("incomplete: missing {}", c.missing.join(", "))
                };
                println!(
                    "  {}  {}  {}  {}  {}  {}",
                    c.repo,
                    c.revision,
                    &c.commit[..c.commit.len().min(12)],
                    c.family,
                    indicatif::HumanBytes(c.bytes),
                    state
                );
            }
            if let Some(d) = env_dir {
                let missing = models::missing_parts(&d);
                println!(
                    "TTPO_MODEL_DIR: {} ({})",
                    d.display(),
                    if missing.is_empty() {
                        "complete".to_string()
                    } else {
                        format!("missing {}", missing.join(", "))
                    }
                );
            }
            println!(
                "Restoration networks ({}):",
                restore_dir
                    .as_ref()
                    .map_or("no folder".to_string(), |d| d.display().to_string())
            );
            for r in &restore {
                println!(
                    "  {:<24} x{}  {:<9} {}",
                    r["name"].as_str().unwrap_or(""),
                    r["scale"],
                    if r["present"] == true {
                        "present"
                    } else {
                        "missing"
                    },
                    r["licence"].as_str().unwrap_or("")
                );
            }
            println!("Learned metrics (pyiqa checkpoints):");
            for c in &iqa {
                println!(
                    "  {:<7} {:<36} {}  {}",
                    c["metric"].as_str().unwrap_or(""),
                    c["file"].as_str().unwrap_or(""),
                    c["path"].as_str().unwrap_or("missing"),
                    c["licence"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        ModelsCommand::Download {
            metrics: Some(metrics),
            force,
            ..
        } => download_metrics(g, &metrics, force),
        ModelsCommand::Download { repo, force, .. } => {
            let mut spec = engine::model_spec(g, repo.clone());
            if repo.is_some() || g.model.is_some() {
                spec.dir = None;
            }
            if spec.dir.is_some() {
                return Err(CliError::usage(
                    "models download fetches a Hub repo; name it (`ttpo models download REPO_ID`) instead of --model-dir/TTPO_MODEL_DIR",
                ));
            }
            let r = models::download(&spec, force)?;
            for (f, size, fetched) in &r.files {
                status(
                    g,
                    format!(
                        "{} {f} ({})",
                        if *fetched { "fetched" } else { "cached " },
                        indicatif::HumanBytes(*size)
                    ),
                );
            }
            status(
                g,
                format!("{} at {} -> {}", spec.repo, &r.commit, r.dir.display()),
            );
            println!("{}", r.dir.display());
            Ok(())
        }
        ModelsCommand::Path { repo } => {
            let spec = engine::model_spec(g, repo);
            let dir = local_model_dir(&spec)?;
            let missing = models::missing_parts(&dir);
            if !missing.is_empty() {
                return Err(CliError::new(
                    code::MODEL_MISSING,
                    format!(
                        "{} is incomplete (missing {}); complete it with `ttpo models download {}`",
                        dir.display(),
                        missing.join(", "),
                        spec.repo
                    ),
                ));
            }
            println!("{}", dir.display());
            Ok(())
        }
        ModelsCommand::Verify { repo, sha256, json } => {
            verify(g, engine::model_spec(g, repo), sha256, json)
        }
    }
}

/// The restoration networks: the folder jobs read (`$TTPO_RESTORE_DIR` or the default),
/// and per network its scale, licence and whether its files are there.
fn restore_nets() -> (Option<PathBuf>, Vec<serde_json::Value>) {
    let dir = ttpo::restore::default_dir();
    let nets = ttpo::restore::RestoreKind::ALL
        .iter()
        .map(|k| {
            let present = dir
                .as_ref()
                .is_some_and(|d| k.files(d).iter().all(|f| f.is_file()));
            json!({"name": k.name(), "scale": k.scale(), "licence": k.licence(), "present": present})
        })
        .collect();
    (dir, nets)
}

/// The learned metrics' checkpoints: where each is found (core's folders, then the Hugging
/// Face cache's copy), or null.
fn iqa_checkpoints() -> Vec<serde_json::Value> {
    use ttpo::scoring::learned;
    let cached = models::snapshot_dir(learned::IQA_REPO, models::DEFAULT_REVISION);
    learned::CHECKPOINTS
        .iter()
        .map(|c| {
            let found = learned::checkpoint_path(&ttpo::ScoringOptions::default(), c.metric)
                .ok()
                .or_else(|| {
                    cached
                        .as_ref()
                        .map(|d| d.join(c.file))
                        .filter(|p| p.is_file())
                });
            json!({"metric": c.metric, "file": c.file, "licence": c.licence, "path": found})
        })
        .collect()
}

/// `ttpo models download --metrics A,B`: pyiqa's checkpoints of learned metrics into the
/// Hugging Face cache (where jobs find them).
fn download_metrics(g: &Global, names: &[String], force: bool) -> CliResult<()> {
    use ttpo::scoring::learned;
    let expanded = learned::expand(names);
    if let Some(bad) = expanded.iter().find(|m| learned::checkpoint(m).is_none()) {
        let known: Vec<&str> = learned::CHECKPOINTS.iter().map(|c| c.metric).collect();
        return Err(CliError::usage(format!(
            "{bad} has no checkpoint to download (learned metrics: {})",
            known.join(", ")
        )));
    }
    let files: Vec<String> = expanded
        .iter()
        .filter_map(|m| learned::checkpoint(m))
        .map(|c| c.file.to_string())
        .collect();
    let spec = engine::model_spec(g, None);
    let dir = models::download_iqa(&spec, files, force)?;
    for m in &expanded {
        let c = learned::checkpoint(m).expect("checked above");
        status(g, format!("{m}: {} (weights: {})", c.file, c.licence));
    }
    println!("{}", dir.display());
    Ok(())
}

fn verify(g: &Global, spec: ModelSpec, sha256: bool, as_json: bool) -> CliResult<()> {
    let dir = local_model_dir(&spec)?;
    let listing = if spec.dir.is_none() && !spec.offline {
        match models::fetch_listing(&spec) {
            Ok(l) => Some(l),
            Err(e) => {
                if !g.quiet {
                    eprintln!(
                        "warning: cannot compare with the Hub ({}); checking local structure only",
                        e.message
                    );
                }
                None
            }
        }
    } else {
        None
    };
    let report = ttpo_models::verify::verify(&dir, listing.as_ref(), sha256)
        .map_err(|e| models::cli_error(&spec, e))?;
    let (checked, problems) = (&report.checked, &report.problems);
    if as_json {
        println!(
            "{}",
            json!({
                "path": dir, "ok": problems.is_empty(), "checked": checked,
                "problems": problems.iter().map(|(f, p)| json!({"file": f, "problem": p})).collect::<Vec<_>>(),
            })
        );
    } else {
        for f in checked {
            status(g, format!("ok   {f}"));
        }
        for (f, p) in problems {
            eprintln!("BAD  {f}: {p}");
        }
    }
    if problems.is_empty() {
        status(
            g,
            format!("{}: all {} files ok", dir.display(), checked.len()),
        );
        Ok(())
    } else {
        let (f, p) = &problems[0];
        let fix = if spec.dir.is_none() {
            format!(
                "; fetch again with `ttpo models download {} --force`",
                spec.repo
            )
        } else {
            String::new()
        };
        let code = if report.only_missing() {
            code::MODEL_MISSING
        } else {
            code::MODEL_INVALID
        };
        Err(CliError::new(
            code,
            format!(
                "{} problem(s) in {}: first {}: {p}{fix}",
                problems.len(),
                dir.display(),
                dir.join(f).display()
            ),
        ))
    }
}
