//! `ttpo refine`: one image through candidates, choice and reward-guided denoising — or,
//! with `--from DIR`, from the candidates `ttpo candidates` saved there.

use crate::args::{Global, RefineArgs};
use crate::error::CliResult;
use crate::saved::{CandidateRecord, SavedCandidates, ScoresRecord};
use crate::ui::{self, status, with_job};
use crate::{engine, input};
use serde_json::json;
use std::time::Instant;
use ttpo::{Job, Options, Selection};

pub fn run(g: &Global, a: RefineArgs) -> CliResult<()> {
    let t_all = Instant::now();
    input::check_output_name(&a.output)?;
    let ttpo::Decoded {
        image: input,
        alpha,
    } = input::open(&a.input, a.job.max_pixels)?;
    let input_size = (input.width(), input.height());
    let saved = match &a.from {
        Some(dir) => {
            let s = SavedCandidates::read(dir)?;
            let candidates = s.load_candidates(dir, &input)?;
            Some((s, candidates))
        }
        None => None,
    };
    // The saved options (older names upgraded by core), then the command line's.
    let base = saved
        .as_ref()
        .map_or_else(Options::default, |(s, _)| s.options.clone());
    let mut options = a.job.apply(base)?;
    crate::models::resolve_iqa(&crate::engine::model_spec(g, None), &mut options.scoring)?;
    let loaded = engine::load(g, &a.job)?;
    ui::check_interrupt()?;
    let rescore = a.job.changes_scoring();
    let (mut job, saved) = match saved {
        Some((s, candidates)) => {
            // After a restore step the job's input is the restored image (candidate 0).
            let input = if s.options.restore.is_some() {
                candidates[0].image.clone()
            } else {
                input
            };
            let mut job = Job::from_candidates(loaded.engine.clone(), input, options, candidates)?;
            ui::announce_estimate(g, &mut job, "", ui::Stages::Rest);
            let n = job.candidates().len();
            let have_choice = a.prefer.is_some() && a.avoid.is_some();
            if rescore || (!have_choice && s.choice().is_none()) {
                with_job(g, &mut job, "", |j, p| j.score_candidates(p))?;
            } else if let Some((w, l)) = s.choice() {
                if w < n && l < n && w != l {
                    job.choose(Selection::Given {
                        preferred: w,
                        dispreferred: l,
                    })?;
                }
            }
            (job, Some(s))
        }
        None => {
            let mut job = Job::new(loaded.engine.clone(), input, options)?;
            ui::announce_estimate(g, &mut job, "", ui::Stages::Rest);
            with_job(g, &mut job, "", |j, p| j.generate_candidates(p))?;
            (job, None)
        }
    };
    let reused = saved.is_some();
    let current = job.choice();
    if a.prefer.is_some() || a.avoid.is_some() {
        let (w0, l0) = current.unwrap_or((usize::MAX, usize::MAX));
        job.choose(Selection::Given {
            preferred: a.prefer.unwrap_or(w0),
            dispreferred: a.avoid.unwrap_or(l0),
        })?;
    } else if current.is_none() {
        job.choose(Selection::Auto)?;
    }
    let (w, l) = job.choice().expect("chosen above");
    let out = with_job(g, &mut job, "", |j, p| j.refine(p))?;
    let alpha =
        alpha.map(|a| ttpo::image::scale_alpha(&a, input_size, (out.width(), out.height())));
    ui::save_image_with_alpha(&out, alpha.as_deref(), &a.output)?;
    let t = job.timings();
    if a.json {
        // Candidates reused without rescoring report the scores saved with them.
        let (scores, candidates) = match (job.scores(), &saved) {
            (None, Some(s)) => (json!(s.scores), json!(s.candidates)),
            (s, _) => (
                json!(s.map(ScoresRecord::new)),
                json!(CandidateRecord::rows(job.candidates(), s, false)),
            ),
        };
        let report = json!({
            "command": "refine",
            "input": a.input,
            "output": a.output,
            "model": loaded.spec.describe(),
            "model_path": loaded.dir,
            "size": [out.width(), out.height()],
            "reused_candidates": reused,
            "from": a.from,
            "options": job.options(),
            "seconds": {
                "load": loaded.seconds,
                "candidates": if reused { 0.0 } else { t.candidates },
                "scoring": t.scoring,
                "refine": t.refine,
                "total": t_all.elapsed().as_secs_f64(),
            },
            "scores": scores,
            "candidates": candidates,
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
