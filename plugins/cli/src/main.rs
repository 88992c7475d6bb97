//! `ttpo` — the TTPO command-line tool. See docs/CLI.md.

mod args;
mod coverage;
mod error;
mod models;
mod sheet;
mod ui;

use args::{
    BatchArgs, CandidatesArgs, Cli, Command, Global, JobArgs, ModelsCommand, RefineArgs, ScoreArgs,
};
use clap::Parser;
use error::{code, CliError, CliResult};
use models::ModelSpec;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use ttpo::CandidateSpec;
use ttpo::{Candidate, Engine, EngineConfig, Image, Job, Options, Scores, Selection};
use ui::{ActiveJob, ProgressMode, StageProgress};

fn main() {
    // The CLI is a process of our own: let malloc keep freed memory between tensors
    // (docs/BENCHMARKS.md; never done inside libttpo, which lives in other processes).
    ttpo::device::keep_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    std::process::exit(
                        if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                            code::USAGE
                        } else {
                            code::OK
                        },
                    );
                }
                _ => {
                    let msg = e.to_string();
                    let first = msg
                        .lines()
                        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"))
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                        .trim_start_matches("error: ")
                        .to_string();
                    eprintln!("error: {first} (see `ttpo --help`)");
                    std::process::exit(code::USAGE);
                }
            }
        }
    };
    ui::install_interrupt_handler();
    let result = run(cli);
    match result {
        Ok(()) => std::process::exit(code::OK),
        Err(e) => {
            eprintln!("error: {}", e.message);
            std::process::exit(e.code);
        }
    }
}

fn run(cli: Cli) -> CliResult<()> {
    let g = cli.global;
    match cli.command {
        Command::Refine(a) => refine(&g, a),
        Command::Candidates(a) => candidates(&g, a),
        Command::Score(a) => score(&g, a),
        Command::Batch(a) => batch(&g, a),
        Command::Models(m) => models_cmd(&g, m),
    }
}

/// The effective progress mode.
fn progress_mode(g: &Global) -> ProgressMode {
    if g.quiet {
        ProgressMode::None
    } else {
        g.progress
    }
}

fn status(g: &Global, msg: impl AsRef<str>) {
    if !g.quiet {
        eprintln!("{}", msg.as_ref());
    }
}

/// Model spec from the global options: --model-dir > --model > $TTPO_MODEL_DIR > default.
fn model_spec(g: &Global, repo_override: Option<String>) -> ModelSpec {
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
        progress: progress_mode(g),
    }
}

fn load_engine(g: &Global, job: &JobArgs) -> CliResult<(Arc<Engine>, PathBuf, ModelSpec, f64)> {
    let spec = model_spec(g, None);
    let dir = models::resolve(&spec)?;
    let config = EngineConfig {
        device: job.device()?,
        precision: job.precision(),
        ..Default::default()
    };
    if progress_mode(g).resolve() != ProgressMode::None {
        eprintln!("loading model {}", dir.display());
    }
    let t0 = Instant::now();
    let engine = Engine::load(&[&dir], &config).map_err(|e| {
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
    Ok((Arc::new(engine), dir, spec, t0.elapsed().as_secs_f64()))
}

/// Reads an input with its alpha plane; `max_pixels` is checked against the file's header
/// before any pixel is decoded.
fn open_input(path: &Path, max_pixels: Option<usize>) -> CliResult<ttpo::Decoded> {
    Image::open_with_alpha(path, max_pixels.unwrap_or(ttpo::DEFAULT_MAX_PIXELS))
        .map_err(CliError::from_input)
}

/// Refuses an output name whose format cannot be written, before any work is done.
fn check_output_name(path: &Path) -> CliResult<()> {
    ttpo::image::output_format(path)
        .map(|_| ())
        .map_err(|e| CliError::usage(error::one_line(&e.to_string())))
}

/// SHA-256 over the decoded pixels (size + f32 samples), independent of file format.
fn pixel_hash(img: &Image) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update((img.width() as u64).to_le_bytes());
    h.update((img.height() as u64).to_le_bytes());
    for v in img.data() {
        h.update(v.to_le_bytes());
    }
    models::hex(&h.finalize())
}

/// The options as saved in candidates.json and printed by `--json`: core's serde form.
fn options_json(o: &Options) -> Value {
    serde_json::to_value(o).expect("options serialize")
}

fn candidate_file(i: usize) -> String {
    format!("candidate-{i:02}.png")
}

/// Per-candidate JSON rows.
fn candidates_json(cands: &[Candidate], scores: Option<&Scores>, files: bool) -> Vec<Value> {
    cands
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut row = json!({
                "index": i,
                "is_input": c.spec.is_none(),
                "backbone": c.spec.as_ref().map(|s| s.backbone),
                "strength": c.spec.as_ref().map(|s| s.strength),
                "seed": c.spec.as_ref().map(|s| s.seed),
                "seed_index": c.spec.as_ref().map(|s| s.seed_index),
            });
            if files {
                row["file"] = json!(candidate_file(i));
            }
            if let Some(s) = scores {
                let metrics: serde_json::Map<String, Value> = s
                    .metrics
                    .iter()
                    .zip(&s.per_metric[i])
                    .map(|(n, v)| (n.clone(), json!(v)))
                    .collect();
                row["metrics"] = Value::Object(metrics);
                row["fused"] = json!(s.fused[i]);
            }
            row
        })
        .collect()
}

fn scores_json(s: Option<&Scores>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({
            "metrics": s.metrics,
            "higher_is_better": s.higher_is_better,
            "dropped": s.dropped.iter().map(|(n, r)| json!({"metric": n, "reason": r})).collect::<Vec<_>>(),
            "preferred": s.preferred,
            "dispreferred": s.dispreferred,
        }),
    }
}

/// Runs `f` with progress shown and Ctrl-C wired to the job's cancel token.
fn with_job<T>(
    g: &Global,
    job: &mut Job,
    prefix: &str,
    f: impl FnOnce(&mut Job, &mut dyn FnMut(&ttpo::Progress)) -> ttpo::Result<T>,
) -> CliResult<T> {
    let _active = ActiveJob::register(job.cancel_token());
    let mut bars = StageProgress::new(progress_mode(g), prefix);
    let r = f(job, &mut |p| bars.update(p));
    bars.finish();
    let v = r?;
    ui::check_interrupt()?;
    Ok(v)
}

/// The saved candidates of `ttpo candidates`.
struct Saved {
    json: Value,
    candidates: Vec<Candidate>,
    choice: Option<(usize, usize)>,
}

fn load_saved(dir: &Path, input: &Image) -> CliResult<Saved> {
    let jpath = dir.join("candidates.json");
    let text = std::fs::read_to_string(&jpath).map_err(|e| {
        CliError::usage(format!(
            "--from {}: cannot read candidates.json ({e}); make it with `ttpo candidates IN -o {}`",
            dir.display(),
            dir.display()
        ))
    })?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::generic(format!("{}: {e}", jpath.display())))?;
    let want = json["input"]["sha256"].as_str().unwrap_or("");
    if want != pixel_hash(input) {
        return Err(CliError::usage(format!(
            "--from {}: the saved candidates were made from a different image ({}); run `ttpo candidates` on this input first",
            dir.display(),
            json["input"]["path"].as_str().unwrap_or("?")
        )));
    }
    let rows = json["candidates"].as_array().cloned().unwrap_or_default();
    let mut candidates = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        if i == 0 || row["is_input"].as_bool() == Some(true) {
            candidates.push(Candidate {
                spec: None,
                image: input.clone(),
            });
            continue;
        }
        let file = dir.join(
            row["file"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| candidate_file(i)),
        );
        let image = Image::open(&file).map_err(|e| {
            CliError::generic(format!(
                "--from {}: cannot read saved candidate {}: {}",
                dir.display(),
                file.display(),
                error::one_line(&e.to_string())
            ))
        })?;
        candidates.push(Candidate {
            spec: Some(CandidateSpec {
                backbone: row["backbone"].as_u64().unwrap_or(0) as usize,
                strength: row["strength"].as_f64().unwrap_or(0.0),
                seed_index: row["seed_index"].as_u64().unwrap_or(0) as usize,
                seed: row["seed"].as_u64().unwrap_or(0),
            }),
            image,
        });
    }
    let choice = match (json["preferred"].as_u64(), json["dispreferred"].as_u64()) {
        (Some(w), Some(l)) => Some((w as usize, l as usize)),
        _ => None,
    };
    Ok(Saved {
        json,
        candidates,
        choice,
    })
}

fn refine(g: &Global, a: RefineArgs) -> CliResult<()> {
    let t_all = Instant::now();
    check_output_name(&a.output)?;
    let ttpo::Decoded {
        image: input,
        alpha,
    } = open_input(&a.input, a.job.max_pixels)?;
    let saved = match &a.from {
        Some(dir) => Some(load_saved(dir, &input)?),
        None => None,
    };
    let base = match &saved {
        // Older files (other key names) load too: core upgrades them.
        Some(s) if !s.json["options"].is_null() => {
            serde_json::from_value::<Options>(s.json["options"].clone()).map_err(|e| {
                CliError::generic(format!(
                    "--from {}: the saved options cannot be read: {e}",
                    a.from.as_deref().unwrap_or(Path::new("?")).display()
                ))
            })?
        }
        _ => Options::default(),
    };
    let options = a.job.apply(base)?;
    let (engine, model_dir, spec, load_s) = load_engine(g, &a.job)?;
    ui::check_interrupt()?;
    let rescore = a.job.changes_scoring();
    let saved_report = saved
        .as_ref()
        .map(|s| (s.json["scores"].clone(), s.json["candidates"].clone()));
    let (mut job, reused) = match saved {
        Some(s) => {
            let mut job = Job::from_candidates(engine, input, options, s.candidates)?;
            let n = job.candidates().len();
            let have_choice = a.prefer.is_some() && a.avoid.is_some();
            if rescore || (!have_choice && s.choice.is_none()) {
                with_job(g, &mut job, "", |j, p| j.score_candidates(p))?;
            } else if let Some((w, l)) = s.choice {
                if w < n && l < n && w != l {
                    job.choose(Selection::Given {
                        preferred: w,
                        dispreferred: l,
                    })?;
                }
            }
            (job, true)
        }
        None => {
            let mut job = Job::new(engine, input, options)?;
            with_job(g, &mut job, "", |j, p| j.generate_candidates(p))?;
            (job, false)
        }
    };
    let current = job.choice();
    if a.prefer.is_some() || a.avoid.is_some() {
        let (w0, l0) = current.unwrap_or((usize::MAX, usize::MAX));
        let w = a.prefer.unwrap_or(w0);
        let l = a.avoid.unwrap_or(l0);
        job.choose(Selection::Given {
            preferred: w,
            dispreferred: l,
        })?;
    } else if current.is_none() {
        job.choose(Selection::Auto)?;
    }
    let (w, l) = job.choice().expect("chosen above");
    let out = with_job(g, &mut job, "", |j, p| j.refine(p))?;
    ui::save_image_with_alpha(&out, alpha.as_deref(), &a.output)?;
    let t = job.timings();
    if a.json {
        let report = json!({
            "command": "refine",
            "input": a.input,
            "output": a.output,
            "model": spec.describe(),
            "model_path": model_dir,
            "size": [out.width(), out.height()],
            "reused_candidates": reused,
            "from": a.from,
            "options": options_json(job.options()),
            "seconds": {
                "load": load_s,
                "candidates": if reused { 0.0 } else { t.candidates },
                "scoring": t.scoring,
                "refine": t.refine,
                "total": t_all.elapsed().as_secs_f64(),
            },
            "scores": match (job.scores(), &saved_report) {
                (None, Some((s, _))) => s.clone(),
                (s, _) => scores_json(s),
            },
            "candidates": match (job.scores(), &saved_report) {
                (None, Some((_, c))) => c.clone(),
                (s, _) => json!(candidates_json(job.candidates(), s, false)),
            },
            "preferred": w,
            "dispreferred": l,
        });
        println!("{report}");
    } else {
        status(
            g,
            format!(
                "wrote {} ({}x{}); preferred #{w}, dispreferred #{l}{}; {:.1}s",
                a.output.display(),
                out.width(),
                out.height(),
                if reused {
                    "; reused saved candidates"
                } else {
                    ""
                },
                t_all.elapsed().as_secs_f64()
            ),
        );
    }
    Ok(())
}

fn fmt_score(v: f64) -> String {
    if v.is_finite() {
        format!("{v:+.2}")
    } else {
        "N/A".into()
    }
}

fn candidates(g: &Global, a: CandidatesArgs) -> CliResult<()> {
    let t_all = Instant::now();
    let input = open_input(&a.input, a.job.max_pixels)?.image;
    let options = a.job.apply(Options::default())?;
    let (engine, model_dir, spec, load_s) = load_engine(g, &a.job)?;
    ui::check_interrupt()?;
    let hash = pixel_hash(&input);
    let mut job = Job::new(engine, input, options)?;
    with_job(g, &mut job, "", |j, p| j.generate_candidates(p))?;
    let dir = &a.output;
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::generic(format!("{}: {e}", dir.display())))?;
    for (i, c) in job.candidates().iter().enumerate() {
        ui::check_interrupt()?;
        ui::save_image(&c.image, &dir.join(candidate_file(i)))?;
    }
    let scores = job.scores();
    let choice = job.choice();
    let spw = job.options().seeds_per_strength;
    let tiles: Vec<sheet::Tile> = job
        .candidates()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let line1 = match &c.spec {
                None => format!("#{i:02} INPUT"),
                Some(s) if spw > 1 => format!("#{i:02} S{:.2} K{}", s.strength, s.seed_index),
                Some(s) => format!("#{i:02} S{:.2}", s.strength),
            };
            let mark = match choice {
                Some((w, _)) if w == i => sheet::Mark::Best,
                Some((_, l)) if l == i => sheet::Mark::Worst,
                _ => sheet::Mark::None,
            };
            let mut line2 = scores
                .map(|s| fmt_score(s.fused[i]))
                .unwrap_or_else(|| "N/A".into());
            match mark {
                sheet::Mark::Best => line2.push_str(" BEST"),
                sheet::Mark::Worst => line2.push_str(" WORST"),
                sheet::Mark::None => {}
            }
            sheet::Tile {
                image: c.image.to_rgb8(),
                line1,
                line2,
                mark,
            }
        })
        .collect();
    let (img, layout) = sheet::render(&tiles);
    let sheet_path = dir.join("contact-sheet.png");
    ui::write_atomic(&sheet_path, |tmp| {
        img.save(tmp)
            .map_err(|e| CliError::generic(format!("{}: {e}", tmp.display())))
    })?;
    let t = job.timings();
    let report = json!({
        "format": "ttpo-candidates",
        "version": 1,
        "ttpo_version": ttpo::VERSION,
        "input": {
            "path": a.input,
            "width": job.input().width(),
            "height": job.input().height(),
            "sha256": hash,
        },
        "model": spec.describe(),
        "model_path": model_dir,
        "options": options_json(job.options()),
        "scores": scores_json(scores),
        "candidates": candidates_json(job.candidates(), scores, true),
        "preferred": choice.map(|c| c.0),
        "dispreferred": choice.map(|c| c.1),
        "contact_sheet": {"file": "contact-sheet.png", "layout": layout},
        "seconds": {"load": load_s, "candidates": t.candidates, "scoring": t.scoring},
    });
    let text = serde_json::to_string_pretty(&report).expect("serialisable");
    ui::save_text(&text, &dir.join("candidates.json"))?;
    if a.json {
        println!("{report}");
    } else {
        status(
            g,
            format!(
                "wrote {} candidates, contact-sheet.png and candidates.json to {}; preferred #{}, dispreferred #{}; {:.1}s\nrefine with: ttpo refine {} -o OUT --from {} [--prefer K --avoid J]",
                job.candidates().len(),
                dir.display(),
                choice.map(|c| c.0.to_string()).unwrap_or("-".into()),
                choice.map(|c| c.1.to_string()).unwrap_or("-".into()),
                t_all.elapsed().as_secs_f64(),
                a.input.display(),
                dir.display()
            ),
        );
    }
    Ok(())
}

fn score(_g: &Global, a: ScoreArgs) -> CliResult<()> {
    let scoring = ttpo::ScoringOptions {
        metrics: a.metrics.clone().unwrap_or_default(),
        brisque_model: a.brisque_model.clone(),
        clip_model: a.clip_model.clone(),
        ..Default::default()
    };
    let metrics = ttpo::scoring::build_metrics(&scoring)?;
    let names: Vec<String> = metrics.iter().map(|m| m.name().to_string()).collect();
    let mut rows = Vec::new();
    let mut bad_input = None;
    for path in &a.images {
        ui::check_interrupt()?;
        let img = match Image::open(path) {
            Ok(i) => i,
            Err(e) => {
                let e = CliError::from_input(e);
                rows.push(json!({"path": path, "error": e.message}));
                bad_input.get_or_insert(e);
                continue;
            }
        };
        let mut scores = serde_json::Map::new();
        let mut errors = serde_json::Map::new();
        for m in &metrics {
            match m.score(&img) {
                Ok(v) => {
                    scores.insert(m.name().into(), json!(v));
                }
                Err(e) => {
                    scores.insert(m.name().into(), Value::Null);
                    errors.insert(m.name().into(), json!(error::one_line(&e.to_string())));
                }
            }
        }
        rows.push(json!({
            "path": path, "width": img.width(), "height": img.height(),
            "scores": scores, "errors": errors,
        }));
    }
    if a.json {
        let info: Vec<Value> = metrics
            .iter()
            .map(|m| json!({"name": m.name(), "higher_is_better": m.higher_is_better()}))
            .collect();
        println!("{}", json!({"metrics": info, "images": rows}));
    } else {
        let pw = a
            .images
            .iter()
            .map(|p| p.display().to_string().chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut head = format!("{:<pw$}", "image");
        for (n, m) in names.iter().zip(&metrics) {
            let arrow = if m.higher_is_better() { "↑" } else { "↓" };
            head.push_str(&format!("  {:>12}", format!("{n}{arrow}")));
        }
        println!("{head}");
        for row in &rows {
            let p = row["path"].as_str().unwrap_or("?");
            let mut line = format!("{p:<pw$}");
            if let Some(err) = row.get("error") {
                line.push_str(&format!("  error: {}", err.as_str().unwrap_or("")));
            } else {
                for n in &names {
                    let cell = row["scores"][n]
                        .as_f64()
                        .map(|v| format!("{v:.4}"))
                        .unwrap_or_else(|| "n/a".into());
                    line.push_str(&format!("  {cell:>12}"));
                }
            }
            println!("{line}");
        }
        for row in &rows {
            if let Some(errs) = row.get("errors").and_then(Value::as_object) {
                for (m, e) in errs {
                    eprintln!(
                        "note: {} {m}: {}",
                        row["path"].as_str().unwrap_or("?"),
                        e.as_str().unwrap_or("")
                    );
                }
            }
        }
    }
    match bad_input {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

const IMAGE_EXTS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

fn batch(g: &Global, a: BatchArgs) -> CliResult<()> {
    let options = a.job.apply(Options::default())?;
    let rd = std::fs::read_dir(&a.input)
        .map_err(|e| CliError::input(format!("{}: {e}", a.input.display())))?;
    let mut inputs: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.')
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    inputs.sort();
    std::fs::create_dir_all(&a.output)
        .map_err(|e| CliError::generic(format!("{}: {e}", a.output.display())))?;
    // Temp files left by a killed run (never complete-looking; safe to remove).
    if let Ok(rd) = std::fs::read_dir(&a.output) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') && n.contains(".ttpo-tmp-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let ext = a.ext.trim_start_matches('.').to_string();
    check_output_name(Path::new(&format!("output.{ext}")))?;
    let mut engine: Option<Arc<Engine>> = None;
    let (mut processed, mut skipped) = (0usize, 0usize);
    let mut failed: Vec<Value> = Vec::new();
    let mut files = Vec::new();
    let n = inputs.len();
    let t_all = Instant::now();
    for (k, inp) in inputs.iter().enumerate() {
        ui::check_interrupt()?;
        let stem = inp.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
        let out = a.output.join(format!("{stem}.{ext}"));
        if out.exists() {
            skipped += 1;
            files.push(json!({"input": inp, "output": out, "status": "skipped"}));
            continue;
        }
        let t0 = Instant::now();
        let result = (|| -> CliResult<()> {
            let ttpo::Decoded {
                image: input,
                alpha,
            } = open_input(inp, Some(options.max_pixels))?;
            if engine.is_none() {
                engine = Some(load_engine(g, &a.job)?.0);
            }
            let e = engine.clone().expect("loaded");
            let mut job = Job::new(e, input, options.clone())?;
            let prefix = format!("[{}/{n}] {stem} ", k + 1);
            let img = with_job(g, &mut job, &prefix, |j, p| j.run(p))?;
            ui::save_image_with_alpha(&img, alpha.as_deref(), &out)
        })();
        match result {
            Ok(()) => {
                processed += 1;
                status(
                    g,
                    format!(
                        "[{}/{n}] {} -> {} ({:.1}s)",
                        k + 1,
                        inp.display(),
                        out.display(),
                        t0.elapsed().as_secs_f64()
                    ),
                );
                files.push(json!({"input": inp, "output": out, "status": "processed", "seconds": t0.elapsed().as_secs_f64()}));
            }
            Err(e) if e.code == code::CANCELLED => return Err(e),
            Err(e)
                if matches!(
                    e.code,
                    code::MODEL_MISSING | code::MODEL_INVALID | code::USAGE
                ) =>
            {
                return Err(e)
            }
            Err(e) => {
                eprintln!("error: {}: {}", inp.display(), e.message);
                failed.push(json!({"input": inp, "error": e.message, "code": e.code}));
                files.push(json!({"input": inp, "output": out, "status": "failed"}));
                if a.fail_fast {
                    return Err(e);
                }
            }
        }
    }
    if a.json {
        println!(
            "{}",
            json!({
                "command": "batch", "input": a.input, "output": a.output,
                "processed": processed, "skipped": skipped, "failed": failed.len(),
                "errors": failed, "files": files,
                "seconds": t_all.elapsed().as_secs_f64(),
            })
        );
    } else {
        status(
            g,
            format!(
                "batch: processed {processed}, skipped {skipped}, failed {} ({:.1}s)",
                failed.len(),
                t_all.elapsed().as_secs_f64()
            ),
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::generic(format!(
            "{} of {n} images failed (see above); run again to retry them",
            failed.len()
        )))
    }
}

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

fn models_cmd(g: &Global, m: ModelsCommand) -> CliResult<()> {
    match m {
        ModelsCommand::List { json } => {
            let cached = models::list_cached();
            let env_dir = std::env::var_os("TTPO_MODEL_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from);
            if json {
                println!(
                    "{}",
                    json!({
                        "cache": models::hub_cache_dir(),
                        "models": cached,
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
                    "  {}  {}  {}  {}  {}",
                    c.repo,
                    c.revision,
                    &c.commit[..c.commit.len().min(12)],
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
            Ok(())
        }
        ModelsCommand::Download { repo, force } => {
            let mut spec = model_spec(g, repo.clone());
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
            let spec = model_spec(g, repo);
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
            verify(g, model_spec(g, repo), sha256, json)
        }
    }
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
