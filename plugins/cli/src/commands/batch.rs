//! `ttpo batch`: every image of a folder, resumable (finished outputs are skipped, a
//! killed run's temp files removed), one engine loaded for all.

use crate::args::{BatchArgs, Global};
use crate::error::{code, CliError, CliResult};
use crate::ui::{self, status, with_job};
use crate::{engine, input};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use ttpo::{Engine, Job, Options};

const IMAGE_EXTS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

pub fn run(g: &Global, a: BatchArgs) -> CliResult<()> {
    let mut options = a.job.apply(Options::default())?;
    crate::models::resolve_iqa(&crate::engine::model_spec(g, None), &mut options.scoring)?;
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
    input::check_output_name(Path::new(&format!("output.{ext}")))?;
    // Loaded on the first image that needs it (a run of skips loads nothing).
    let mut shared: Option<Arc<Engine>> = None;
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
            } = input::open(inp, Some(options.max_pixels))?;
            if shared.is_none() {
                shared = Some(engine::load(g, &a.job)?.engine);
            }
            let e = shared.clone().expect("loaded");
            let input_size = (input.width(), input.height());
            let mut job = Job::new(e, input, options.clone())?;
            let prefix = format!("[{}/{n}] {stem} ", k + 1);
            ui::announce_estimate(g, &mut job, &prefix, ui::Stages::Rest);
            let img = with_job(g, &mut job, &prefix, |j, p| j.run(p))?;
            let alpha = alpha
                .map(|a| ttpo::image::scale_alpha(&a, input_size, (img.width(), img.height())));
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
