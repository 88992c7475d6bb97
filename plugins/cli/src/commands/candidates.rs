//! `ttpo candidates`: Stage I and II only; every candidate, the contact sheet and
//! candidates.json written to a folder that `ttpo refine --from` reuses.

use crate::args::{CandidatesArgs, Global};
use crate::error::{CliError, CliResult};
use crate::saved::{
    self, pixel_hash, CandidateRecord, InputRecord, SavedCandidates, ScoresRecord, Seconds,
    SheetRecord,
};
use crate::ui::{self, status, with_job};
use crate::{engine, input};
use std::time::Instant;
use ttpo::{Job, Options};

pub fn run(g: &Global, a: CandidatesArgs) -> CliResult<()> {
    let t_all = Instant::now();
    let input = input::open(&a.input, a.job.max_pixels)?.image;
    let mut options = a.job.apply(Options::default())?;
    crate::models::resolve_iqa(&crate::engine::model_spec(g, None), &mut options.scoring)?;
    let loaded = engine::load(g, &a.job)?;
    ui::check_interrupt()?;
    let hash = pixel_hash(&input);
    let mut job = Job::new(loaded.engine.clone(), input, options)?;
    ui::announce_estimate(g, &mut job, "", ui::Stages::CandidatesOnly);
    with_job(g, &mut job, "", |j, p| j.generate_candidates(p))?;
    let dir = &a.output;
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::generic(format!("{}: {e}", dir.display())))?;
    for (i, c) in job.candidates().iter().enumerate() {
        ui::check_interrupt()?;
        ui::save_image(&c.image, &dir.join(saved::candidate_file(i)))?;
    }
    // Core's sheet (the one the C ABI hands to plug-ins), saved as 8-bit PNG: its colours
    // are 8-bit values, so the file is exact.
    let sheet = ttpo::sheet::natural(&job)?;
    let sheet_path = dir.join(saved::SHEET_FILE);
    ui::write_atomic(&sheet_path, |tmp| {
        sheet
            .image
            .to_rgb8()
            .save_with_format(tmp, image::ImageFormat::Png)
            .map_err(|e| CliError::generic(format!("{}: {e}", tmp.display())))
    })?;
    let (scores, choice, t) = (job.scores(), job.choice(), job.timings());
    let record = SavedCandidates {
        format: saved::FORMAT.into(),
        version: saved::VERSION,
        ttpo_version: ttpo::VERSION.into(),
        input: InputRecord {
            path: a.input.clone(),
            width: job.input().width(),
            height: job.input().height(),
            sha256: hash,
        },
        model: loaded.spec.describe(),
        model_path: loaded.dir.clone(),
        options: job.options().clone(),
        scores: scores.map(ScoresRecord::new),
        candidates: CandidateRecord::rows(job.candidates(), scores, true),
        preferred: choice.map(|c| c.0),
        dispreferred: choice.map(|c| c.1),
        contact_sheet: SheetRecord {
            file: saved::SHEET_FILE.into(),
            layout: sheet.layout,
        },
        seconds: Seconds {
            load: loaded.seconds,
            candidates: t.candidates,
            scoring: t.scoring,
        },
    };
    record.write(dir)?;
    if a.json {
        println!("{}", serde_json::to_string(&record).expect("serialisable"));
    } else {
        status(
            g,
            format!(
                "wrote {} candidates, {} and {} to {}; preferred #{}, dispreferred #{}; {:.1}s\nrefine with: ttpo refine {} -o OUT --from {} [--prefer K --avoid J]",
                job.candidates().len(),
                saved::SHEET_FILE,
                saved::FILE,
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
