//! Stage II with the learned metrics in a whole job: candidates ranked by MUSIQ and
//! TOPIQ-NR, deterministically, with the checkpoints found through `iqa_model_dir` under
//! pyiqa's published file names. The weights are the conformance run's random ones
//! (`$TTPO_REFERENCE/iqa/*.pth`, written by scripts/conformance/iqa_reference_*.py), so the
//! test is `#[ignore]`d like the conformance tests and run by scripts/conformance/run.sh.
//! MANIQA is left out here only for time (9 ViT-B/8 crops per candidate on a CPU); it is
//! the same `Metric` path.

mod common;

use std::path::PathBuf;
use ttpo::scoring::learned;
use ttpo::{Image, Job};

fn reference_iqa() -> Option<PathBuf> {
    let Some(root) = std::env::var_os("TTPO_REFERENCE") else {
        eprintln!("TTPO_REFERENCE is not set: skipping (scripts/conformance/run.sh sets it)");
        return None;
    };
    Some(PathBuf::from(root).join("iqa"))
}

#[test]
#[ignore = "needs the conformance run's random-weight checkpoints ($TTPO_REFERENCE/iqa)"]
fn a_job_ranks_its_candidates_with_learned_metrics() {
    let Some(reference) = reference_iqa() else {
        return;
    };
    // The random-weight files under the published names, in a folder of their own.
    let dir = common::temp_dir("iqa-job");
    for (ours, metric) in [("musiq.pth", "musiq"), ("topiq.pth", "topiq")] {
        let src = reference.join(ours);
        assert!(
            src.is_file(),
            "{} missing: run scripts/conformance/run.sh",
            src.display()
        );
        let file = learned::checkpoint(metric).unwrap().file;
        std::fs::copy(&src, dir.join(file)).unwrap();
    }
    let engine = common::tiny_engine();
    let input = Image::open(common::assets().join("photos/astronaut.png"))
        .unwrap()
        .crop(160, 40, 96, 96);
    let mut options = common::fast_options();
    options.scoring.metrics = vec!["musiq".into(), "topiq".into()];
    options.scoring.iqa_model_dir = Some(dir.clone());

    let run = || {
        let mut job = Job::new(engine.clone(), input.clone(), options.clone()).unwrap();
        job.generate_candidates(&mut |_| {}).unwrap();
        let s = job.scores().unwrap().clone();
        let sheet = ttpo::sheet::tiles(&job)
            .unwrap()
            .iter()
            .map(|t| t.lines.clone())
            .collect::<Vec<_>>();
        (s, job.choice().unwrap(), sheet)
    };
    let (a, choice, sheet) = run();
    assert_eq!(a.metrics, ["musiq", "topiq"]);
    assert!(a.dropped.is_empty(), "{:?}", a.dropped);
    let n = a.per_metric.len();
    assert!(n >= 3, "input + candidates: {n}");
    for j in 0..2 {
        let col: Vec<f64> = a.per_metric.iter().map(|r| r[j]).collect();
        assert!(col.iter().all(|v| v.is_finite()), "{col:?}");
        assert!(
            col.iter().any(|v| (v - col[0]).abs() > 1e-9),
            "{} gives every candidate the same score: {col:?}",
            a.metrics[j]
        );
        println!("{}: {col:?}", a.metrics[j]);
    }
    // The fused z-score picks; the sheet marks the pick.
    assert_eq!(choice, (a.preferred, a.dispreferred));
    assert_eq!(a.preferred, ttpo::scoring::argmax(&a.fused));
    assert!(
        sheet[choice.0][1].ends_with("BEST"),
        "{:?}",
        sheet[choice.0]
    );
    assert!(
        sheet[choice.1][1].ends_with("WORST"),
        "{:?}",
        sheet[choice.1]
    );
    // Deterministic: a second job scores and picks the same, bit for bit.
    let (b, choice_b, _) = run();
    assert_eq!(a.per_metric, b.per_metric);
    assert_eq!(choice, choice_b);

    // The preset names the three learned metrics; without MANIQA's file the job says which
    // file is missing where.
    let mut preset = options.clone();
    preset.scoring.metrics = vec!["reproduction".into()];
    let err = Job::new(engine.clone(), input.clone(), preset)
        .err()
        .expect("maniqa's checkpoint is missing")
        .to_string();
    assert!(err.contains("ckpt_koniq10k.pt"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
