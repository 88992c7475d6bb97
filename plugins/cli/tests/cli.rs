//! End-to-end tests of the `ttpo` binary on a tiny model and downscaled real photos.

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn model_args(c: &mut std::process::Command) -> &mut std::process::Command {
    c.arg("--model-dir")
        .arg(tiny_model())
        .args(["--progress", "none"])
}

#[test]
fn refine_writes_the_output_and_a_json_report() {
    let d = temp_dir("refine");
    let input = photo(&d, "in.png", 72, 0);
    let out = d.join("out.png");
    let r = run_ok(
        model_args(ttpo(&d).arg("refine").arg(&input).arg("-o").arg(&out))
            .args(FAST)
            .arg("--json"),
    );
    let j = json_of(&r);
    let img = image::open(&out).expect("output decodes");
    assert_eq!((img.width(), img.height()), (72, 72));
    assert_eq!(j["size"], serde_json::json!([72, 72]));
    assert_eq!(j["reused_candidates"], false);
    assert_eq!(j["candidates"].as_array().unwrap().len(), 3);
    assert_ne!(j["preferred"], j["dispreferred"]);
    // No temp file is left next to the output.
    let leftovers: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("ttpo-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    // Before the job, a status line said what it would take, stage by stage.
    let log = stderr(&r);
    let line = log
        .lines()
        .find(|l| l.starts_with("estimate: about "))
        .unwrap_or_else(|| panic!("no estimate line:\n{log}"));
    for stage in ["candidates ", "scoring ", "refinement "] {
        assert!(line.contains(stage), "{line}");
    }
    assert!(line.ends_with(" s)"), "{line}");
}

#[test]
fn the_estimate_is_left_out_when_asked_or_quiet() {
    let d = temp_dir("no-estimate");
    let input = photo(&d, "in.png", 64, 0);
    for flag in ["--no-estimate", "--quiet"] {
        let r = run_ok(
            model_args(
                ttpo(&d)
                    .arg(flag)
                    .arg("refine")
                    .arg(&input)
                    .arg("-o")
                    .arg(d.join("out.png")),
            )
            .args(FAST),
        );
        assert!(!stderr(&r).contains("estimate: "), "{flag}: {}", stderr(&r));
    }
}

fn pixel(img: &image::RgbImage, x: u32, y: u32) -> [u8; 3] {
    img.get_pixel(x, y).0
}

#[test]
fn candidates_writes_files_and_a_labelled_contact_sheet() {
    let d = temp_dir("cands");
    let input = photo(&d, "in.png", 64, 10);
    let dir = d.join("cands");
    let r = run_ok(
        model_args(ttpo(&d).arg("candidates").arg(&input).arg("-o").arg(&dir))
            .args(fast(&["--strengths", "0.2,0.4,0.6,0.8"]))
            .arg("--json"),
    );
    let j = json_of(&r);
    let n = 5; // the input + 4 strengths
    let cands = j["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), n);
    for i in 0..n {
        let f = dir.join(format!("candidate-{i:02}.png"));
        let img = image::open(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!((img.width(), img.height()), (64, 64));
        assert_eq!(
            img.color(),
            image::ColorType::Rgb16,
            "candidates are lossless 16-bit"
        );
    }
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("candidates.json")).unwrap())
            .unwrap();
    assert_eq!(saved["input"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        saved["options"]["strengths"],
        serde_json::json!([0.2, 0.4, 0.6, 0.8])
    );

    // The grid: 5 tiles -> 3 columns x 2 rows of equal tiles with gaps.
    let sheet = image::open(dir.join("contact-sheet.png"))
        .unwrap()
        .to_rgb8();
    let l = &saved["contact_sheet"]["layout"];
    let g = |k: &str| l[k].as_u64().unwrap() as u32;
    assert_eq!((g("cols"), g("rows")), (3, 2));
    let (tw, th, gap, border) = (g("tile_w"), g("tile_h"), g("gap"), g("border"));
    assert_eq!(sheet.width(), 3 * tw + 4 * gap);
    assert_eq!(sheet.height(), 2 * th + 3 * gap);
    let w = saved["preferred"].as_u64().unwrap() as u32;
    let lo = saved["dispreferred"].as_u64().unwrap() as u32;
    for i in 0..6u32 {
        let (x0, y0) = (gap + (i % 3) * (tw + gap), gap + (i / 3) * (th + gap));
        // A pixel in the middle of the tile's top border, and one in the gap before it.
        let b = pixel(&sheet, x0 + tw / 2, y0 + border / 2);
        let bg = pixel(&sheet, x0 - gap / 2, y0 + th / 2);
        assert_eq!(bg, [20, 20, 20], "gap colour before tile {i}");
        let expect = if i as usize >= n {
            [20, 20, 20] // empty slot
        } else if i == w {
            [40, 200, 60]
        } else if i == lo {
            [230, 50, 40]
        } else {
            [90, 90, 90]
        };
        assert_eq!(
            b, expect,
            "border colour of tile {i} (best {w}, worst {lo})"
        );
    }
    // The label band of the best tile has text in the best colour ("BEST").
    let (x0, y0) = (gap + (w % 3) * (tw + gap), gap + (w / 3) * (th + gap));
    let label_top = y0 + border + g("thumb");
    let green = (x0..x0 + tw)
        .flat_map(|x| (label_top..y0 + th - border).map(move |y| (x, y)))
        .filter(|&(x, y)| pixel(&sheet, x, y) == [40, 200, 60])
        .count();
    assert!(green > 20, "BEST label drawn ({green} px)");
}

#[test]
fn score_prints_a_table_and_json() {
    let d = temp_dir("score");
    let sharp = photo(&d, "sharp.png", 128, 0);
    let blurred = d.join("blurred.png");
    image::imageops::blur(&image::open(&sharp).unwrap().to_rgb8(), 2.0)
        .save(&blurred)
        .unwrap();
    let r = run_ok(ttpo(&d).arg("score").arg(&sharp).arg(&blurred).args([
        "--metrics",
        "sharpness,piqe,niqe",
        "--json",
    ]));
    let j = json_of(&r);
    let rows = j["images"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let s = |i: usize, m: &str| rows[i]["scores"][m].as_f64().unwrap();
    for i in 0..2 {
        for m in ["sharpness", "piqe", "niqe"] {
            assert!(s(i, m).is_finite(), "{m} of image {i}");
        }
    }
    assert!(
        s(0, "sharpness") > s(1, "sharpness"),
        "blur lowers sharpness"
    );
    // The table shows the same numbers.
    let t = run_ok(
        ttpo(&d)
            .arg("score")
            .arg(&sharp)
            .args(["--metrics", "sharpness"]),
    );
    let table = String::from_utf8_lossy(&t.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("sharpness"), "{table}");
    assert!(
        lines[1].contains(&format!("{:.4}", s(0, "sharpness"))),
        "{table}"
    );
    // A file that is not an image: exit code 4 with one error line.
    let bogus = d.join("bogus.png");
    std::fs::write(&bogus, b"not a png").unwrap();
    let e = ttpo(&d).arg("score").arg(&bogus).output().unwrap();
    assert_eq!(e.status.code(), Some(4), "{}", stderr(&e));
}

#[test]
fn batch_is_resumable_and_skips_finished_outputs() {
    let d = temp_dir("batch");
    let ind = d.join("in");
    std::fs::create_dir_all(&ind).unwrap();
    photo(&ind, "a.png", 64, 0);
    photo(&ind, "b.png", 64, 40);
    std::fs::write(ind.join("notes.txt"), "not an image").unwrap();
    let outd = d.join("out");
    let run = |d: &Path| {
        json_of(&run_ok(
            model_args(ttpo(d).arg("batch").arg(&ind).arg("-o").arg(&outd))
                .args(FAST)
                .arg("--json"),
        ))
    };
    let j = run(&d);
    assert_eq!(
        (j["processed"].as_u64(), j["skipped"].as_u64()),
        (Some(2), Some(0))
    );
    let mtime = |f: &str| std::fs::metadata(outd.join(f)).unwrap().modified().unwrap();
    let (ma, mb) = (mtime("a.png"), mtime("b.png"));
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    let j = run(&d);
    assert_eq!(
        (j["processed"].as_u64(), j["skipped"].as_u64()),
        (Some(0), Some(2))
    );
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "a finished batch does no work"
    );
    assert_eq!(
        (mtime("a.png"), mtime("b.png")),
        (ma, mb),
        "outputs untouched"
    );
    // An interrupted file (output missing, stale temp present) is redone.
    std::fs::remove_file(outd.join("b.png")).unwrap();
    std::fs::write(outd.join(".b.ttpo-tmp-1.png"), b"partial").unwrap();
    let j = run(&d);
    assert_eq!(
        (j["processed"].as_u64(), j["skipped"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(image::open(outd.join("b.png")).is_ok());
    assert!(
        !outd.join(".b.ttpo-tmp-1.png").exists(),
        "stale temp removed"
    );
}

#[test]
fn refine_reuses_saved_candidates_with_a_human_choice() {
    let d = temp_dir("reuse");
    let input = photo(&d, "in.png", 64, 20);
    let dir = d.join("cands");
    // Enough Stage I work that recomputing it would show.
    let heavy = [
        "--steps",
        "30",
        "--strengths",
        "0.3,0.5,0.7",
        "--seeds-per-strength",
        "2",
    ];
    let c = json_of(&run_ok(
        model_args(ttpo(&d).arg("candidates").arg(&input).arg("-o").arg(&dir))
            .args(fast(&heavy))
            .arg("--json"),
    ));
    let (w, l) = (
        c["preferred"].as_u64().unwrap(),
        c["dispreferred"].as_u64().unwrap(),
    );
    let n = c["candidates"].as_array().unwrap().len() as u64;
    assert_eq!(n, 7);
    // Automatic choice from the cache, then a different human choice.
    let auto_out = d.join("auto.png");
    let a = run_ok(
        ttpo(&d)
            .arg("--model-dir")
            .arg(tiny_model())
            .args(["--progress", "plain", "refine"])
            .arg(&input)
            .arg("-o")
            .arg(&auto_out)
            .arg("--from")
            .arg(&dir)
            .args([
                "--refine-steps",
                "6",
                "--guidance",
                "50",
                "--device",
                "cpu",
                "--json",
            ]),
    );
    let aj = json_of(&a);
    assert_eq!(aj["reused_candidates"], true);
    assert_eq!(
        (aj["preferred"].as_u64(), aj["dispreferred"].as_u64()),
        (Some(w), Some(l))
    );
    let log = stderr(&a);
    assert!(
        !log.contains("candidates "),
        "Stage I must not run again:\n{log}"
    );
    assert!(log.contains("refine "), "{log}");
    // The options saved with the candidates are used (steps 30 etc.).
    assert_eq!(aj["options"]["steps"], 30);

    let (pw, pl) = ((w + 1) % n, (w + 2) % n);
    let (pw, pl) = if pw == w || pl == l {
        ((l + 1) % n, l)
    } else {
        (pw, pl)
    };
    let pw = if pw == pl { (pl + 3) % n } else { pw };
    let human_out = d.join("human.png");
    let h = run_ok(
        ttpo(&d)
            .arg("--model-dir")
            .arg(tiny_model())
            .args(["--progress", "plain", "refine"])
            .arg(&input)
            .arg("-o")
            .arg(&human_out)
            .arg("--from")
            .arg(&dir)
            .args(["--prefer", &pw.to_string(), "--avoid", &pl.to_string()])
            .args([
                "--refine-steps",
                "6",
                "--guidance",
                "50",
                "--device",
                "cpu",
                "--json",
            ]),
    );
    let hj = json_of(&h);
    assert_eq!(
        (hj["preferred"].as_u64(), hj["dispreferred"].as_u64()),
        (Some(pw), Some(pl))
    );
    assert!(!stderr(&h).contains("candidates "));
    assert_eq!(hj["seconds"]["candidates"], 0.0);
    let diff = mean_abs_diff(&auto_out, &human_out);
    assert!(
        diff > 0.0,
        "a different pair gives a different result (diff {diff})"
    );

    // A different input cannot use these candidates.
    let other = photo(&d, "other.png", 64, 60);
    let e = model_args(
        ttpo(&d)
            .arg("refine")
            .arg(&other)
            .arg("-o")
            .arg(d.join("x.png")),
    )
    .arg("--from")
    .arg(&dir)
    .output()
    .unwrap();
    assert_eq!(e.status.code(), Some(2), "{}", stderr(&e));
    assert!(stderr(&e).contains("different image"), "{}", stderr(&e));
    assert!(!d.join("x.png").exists());
}

#[test]
fn offline_without_a_cached_model_names_the_fix() {
    let d = temp_dir("offline");
    let input = photo(&d, "in.png", 64, 0);
    for env_offline in [true, false] {
        let mut c = ttpo(&d);
        c.arg("refine").arg(&input).arg("-o").arg(d.join("out.png"));
        if env_offline {
            c.env("HF_HUB_OFFLINE", "1");
        } else {
            c.arg("--offline");
        }
        let e = c.output().unwrap();
        assert_eq!(e.status.code(), Some(3), "{}", stderr(&e));
        let err = stderr(&e);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(
            err.contains("ttpo models download stabilityai/stable-diffusion-2-1-base"),
            "{err}"
        );
        assert!(err.contains("--model-dir"), "{err}");
        assert!(!d.join("out.png").exists());
    }
}

#[test]
fn corrupt_weights_are_reported_with_the_file_name() {
    let d = temp_dir("corrupt");
    let model = d.join("model");
    for rel in common_files(&tiny_model()) {
        let to = model.join(&rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(tiny_model().join(&rel), &to).unwrap();
    }
    let w = model.join("unet/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let input = photo(&d, "in.png", 64, 0);
    let e = ttpo(&d)
        .arg("--model-dir")
        .arg(&model)
        .arg("refine")
        .arg(&input)
        .arg("-o")
        .arg(d.join("out.png"))
        .args(FAST)
        .output()
        .unwrap();
    let err = stderr(&e);
    assert_eq!(e.status.code(), Some(5), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("unet/diffusion_pytorch_model.safetensors"),
        "{err}"
    );
    assert!(!d.join("out.png").exists());
    // `models verify` finds it too.
    let v = ttpo(&d)
        .arg("--model-dir")
        .arg(&model)
        .args(["models", "verify"])
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(5), "{}", stderr(&v));
    assert!(stderr(&v).contains("unet/diffusion_pytorch_model.safetensors"));
}

fn common_files(root: &Path) -> Vec<String> {
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                go(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut v = Vec::new();
    go(root, root, &mut v);
    v
}

#[cfg(unix)]
#[test]
fn sigint_cancels_promptly_and_leaves_no_output() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let d = temp_dir("sigint");
    let input = photo(&d, "in.png", 128, 0);
    let out = d.join("out.png");
    let mut child = ttpo(&d)
        .arg("--model-dir")
        .arg(tiny_model())
        .args(["--progress", "plain", "refine"])
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .args([
            "--steps",
            "400",
            "--strengths",
            "0.9",
            "--seeds-per-strength",
            "8",
        ])
        .args([
            "--refine-steps",
            "400",
            "--metrics",
            "sharpness",
            "--device",
            "cpu",
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.starts_with("candidates ") && !line.starts_with("candidates 0/") {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.starts_with("candidates ")),
        "no progress seen: {seen:?}"
    );
    let t0 = Instant::now();
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let took = t0.elapsed();
    assert_eq!(status.code(), Some(130), "stderr after SIGINT: {rest:?}");
    assert!(took < Duration::from_secs(20), "cancel took {took:?}");
    assert!(rest.iter().any(|l| l == "error: cancelled"), "{rest:?}");
    assert!(!out.exists(), "no output after a cancel");
    let left: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("ttpo-tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let d = temp_dir("usage");
    let e = ttpo(&d).args(["refine", "--bogus"]).output().unwrap();
    assert_eq!(e.status.code(), Some(2));
    assert_eq!(stderr(&e).trim_end().lines().count(), 1, "{}", stderr(&e));
    let input = photo(&d, "in.png", 64, 0);
    let e = model_args(
        ttpo(&d)
            .arg("refine")
            .arg(&input)
            .arg("-o")
            .arg(d.join("o.png")),
    )
    .args(["--strengths", "1.5"])
    .output()
    .unwrap();
    assert_eq!(e.status.code(), Some(2), "{}", stderr(&e));
}

/// The saved options are core's serde form (every option, `clip_model` included), a
/// candidates.json written before the option names were unified still loads, and a broken
/// one is an error naming the file, the line and the field.
#[test]
fn saved_options_keep_every_option_and_old_files_load() {
    let d = temp_dir("saved-options");
    let input = photo(&d, "in.png", 48, 3);
    let dir = d.join("cands");
    run_ok(
        model_args(ttpo(&d).arg("candidates").arg(&input).arg("-o").arg(&dir))
            .args(FAST)
            .args(["--clip-model", "/nonexistent/clip", "--cfg", "2.5"]),
    );
    let path = dir.join("candidates.json");
    let mut saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let o = &saved["options"];
    assert_eq!(o["clip_model"], "/nonexistent/clip");
    assert_eq!(o["cfg_scale"], 2.5);
    for name in [
        "refine_steps",
        "guidance",
        "refine_start",
        "pad_mode",
        "tile_overlap",
    ] {
        assert!(!o[name].is_null(), "{name} missing from {o}");
    }
    // Rewrite the options as the CLI saved them before: "pad", Stage III nested under
    // "refine" with short names, no clip_model.
    saved["options"] = serde_json::json!({
        "prompt": o["prompt"], "strengths": o["strengths"], "steps": o["steps"],
        "metrics": o["metrics"], "seed": o["seed"], "cfg_scale": 2.5, "pad": "zero",
        "memory_budget_mib": 2048,
        "refine": {"steps": 5, "t1": 700.0, "t2": 100.0, "alpha": 0.5, "guidance": 77.0,
                   "d0": 0.9, "start": "noise"},
    });
    std::fs::write(&path, serde_json::to_string_pretty(&saved).unwrap()).unwrap();
    let r = run_ok(
        model_args(
            ttpo(&d)
                .arg("refine")
                .arg(&input)
                .arg("-o")
                .arg(d.join("out.png")),
        )
        .arg("--from")
        .arg(&dir)
        .args(["--device", "cpu", "--json"]),
    );
    let j = json_of(&r);
    assert_eq!(j["reused_candidates"], true);
    let o = &j["options"];
    assert_eq!(o["refine_steps"], 5);
    assert_eq!(o["guidance"], 77.0);
    assert_eq!(o["pad_mode"], "zero");
    assert_eq!(o["memory_budget_mib"], 2048);
    assert_eq!(o["steps"], 6);
    assert_eq!(o["clip_model"], serde_json::Value::Null);
    assert!(o.get("refine").is_none() && o.get("pad").is_none(), "{o}");
    // A broken file is an error naming the file, the line and the field (exit 1, no
    // output), not a silent default.
    let refine_broken = |saved: &serde_json::Value, out: &str| {
        std::fs::write(&path, serde_json::to_string_pretty(saved).unwrap()).unwrap();
        let e = model_args(
            ttpo(&d)
                .arg("refine")
                .arg(&input)
                .arg("-o")
                .arg(d.join(out)),
        )
        .arg("--from")
        .arg(&dir)
        .args(["--device", "cpu"])
        .output()
        .unwrap();
        assert_eq!(e.status.code(), Some(1), "{}", stderr(&e));
        stderr(&e)
    };
    saved["options"]["steps"] = serde_json::json!("six");
    let msg = refine_broken(&saved, "o2.png");
    assert!(
        msg.contains("candidates.json: line ")
            && msg.contains("`options`: invalid type: string \"six\""),
        "{msg}"
    );
    // A generated candidate without its strength.
    saved["options"]["steps"] = serde_json::json!(6);
    saved["candidates"][1]
        .as_object_mut()
        .unwrap()
        .remove("strength");
    let msg = refine_broken(&saved, "o3.png");
    assert!(
        msg.contains("`candidates[1]`: missing field `strength`"),
        "{msg}"
    );
    assert!(!d.join("o2.png").exists() && !d.join("o3.png").exists());
}
