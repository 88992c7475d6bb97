//! Drives TTPO.ofx.bundle through the project's own OpenFX host, the way hosts load plug-ins:
//! load → describe → describe in context → instance → renders (8-bit, 16-bit RGB, float with
//! negative rowBytes, render window, render scale) with the estimate as the progress label →
//! parameter changes and cache hits, libttpo's contact sheet → abort → errors →
//! destroy/unload; and a bundle without libttpo.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{bundle, photo, s, temp_dir, tiny_model};
use ttpo_ofx_host::ofx::*;
use ttpo_ofx_host::{is_mapped, Effect, ImageBuf, Plugin, Rows, Val};

fn engine_runs(e: &Effect) -> u64 {
    e.progress_updates.load(Ordering::SeqCst)
}

/// The label of the latest progressStart.
fn last_label(e: &Effect) -> String {
    e.progress_labels
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap_or_default()
}

/// Asserts `label` is "TTPO: about <duration>", the duration written exactly as core's
/// `Estimate::describe` writes some whole number of seconds.
fn assert_estimate_label(label: &str) {
    let d = label
        .strip_prefix("TTPO: about ")
        .unwrap_or_else(|| panic!("no estimate in the progress label {label:?}"));
    assert!(
        (0..100_000).any(|s| ttpo::Estimate::describe(s as f64) == d),
        "{d:?} is not a duration as core writes it"
    );
}

/// Pixels of `img` whose RGB is the 8-bit colour `rgb`.
fn count_rgb(img: &ImageBuf, rgb: [u8; 3]) -> usize {
    let mut n = 0;
    for r in 0..img.height() {
        for x in 0..img.width() {
            let v = img.get(x, r);
            n += (0..3).all(|c| (v[c] * 255.0 - rgb[c] as f32).abs() < 0.5) as usize;
        }
    }
    n
}

fn errors(e: &Effect) -> usize {
    e.messages
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.kind == "OfxMessageError")
        .count()
}

#[test]
fn host_drives_the_plugin() {
    let b = bundle();
    // --- host scan: load + describe (+ both contexts); the engine must stay unloaded.
    let t = Instant::now();
    let p = Plugin::load(&b).expect("plug-in loads");
    let d = p.describe().expect("describe");
    let f = p
        .describe_in_context(&d, CONTEXT_FILTER)
        .expect("describe filter");
    let g = p
        .describe_in_context(&d, CONTEXT_GENERAL)
        .expect("describe general");
    let scan = t.elapsed();
    eprintln!(
        "host scan (dlopen, load, describe, 2 contexts): {:.2} ms",
        scan.as_secs_f64() * 1e3
    );
    assert!(scan < Duration::from_millis(500), "scan took {scan:?}");
    assert!(!is_mapped("libttpo.so"), "describe must not load libttpo");
    assert_eq!(p.id, "org.ttpo.TTPO");
    assert_eq!(p.version, (0, 1));
    let strs = |e: &Effect, k: &str| -> Vec<String> {
        e.props
            .all(k)
            .into_iter()
            .filter_map(|v| {
                if let Val::Str(s) = v {
                    Some(s.into_string().unwrap())
                } else {
                    None
                }
            })
            .collect()
    };
    assert_eq!(
        strs(&d, "OfxImageEffectPropSupportedContexts"),
        [CONTEXT_FILTER, CONTEXT_GENERAL]
    );
    assert_eq!(
        strs(&d, "OfxImageEffectPropSupportedPixelDepths"),
        [DEPTH_BYTE, DEPTH_SHORT, DEPTH_FLOAT]
    );
    assert_eq!(
        d.props
            .get_str("OfxImageEffectPluginRenderThreadSafety", 0)
            .unwrap(),
        "OfxImageEffectRenderInstanceSafe"
    );
    for ctx in [&f, &g] {
        assert!(ctx.clip("Source").is_some() && ctx.clip("Output").is_some());
        let names = ctx.param_names();
        for n in [
            "modelDir",
            "strengths",
            "seed",
            "steps",
            "selection",
            "preferred",
            "dispreferred",
            "view",
            "candidate",
            "mix",
            "metrics",
            "refine_steps",
        ] {
            assert!(
                names.iter().any(|x| x == n),
                "missing parameter {n}: {names:?}"
            );
        }
    }
    // The metrics hint: libttpo is not loaded yet, so it cannot list the metrics.
    let hint = |e: &Effect| {
        e.param("metrics")
            .unwrap()
            .props
            .get_str("OfxParamPropHint", 0)
            .unwrap()
    };
    assert!(
        hint(&f).contains("once the effect has rendered") && !hint(&f).contains("niqe"),
        "{}",
        hint(&f)
    );
    assert_eq!(
        f.param("view")
            .unwrap()
            .props
            .all("OfxParamPropChoiceOption")
            .len(),
        3
    );
    // Instances.
    let gi = p
        .create_instance(&g, CONTEXT_GENERAL)
        .expect("general instance");
    assert_eq!(p.destroy_instance(gi), STAT_OK);
    let inst = p
        .create_instance(&f, CONTEXT_FILTER)
        .expect("filter instance");
    p.set_param(&inst, "modelDir", s(tiny_model().to_str().unwrap()));
    p.set_param(&inst, "strengths", s("0.3,0.6"));
    p.set_param(&inst, "steps", Val::Int(4));
    p.set_param(&inst, "metrics", s("sharpness"));
    p.set_param(&inst, "seed", Val::Int(7));

    let img = photo(64);
    let input8 = ImageBuf::from_rgba8(&img, DEPTH_BYTE, 4, Rows::BottomUp, 0);
    let render = |src: ImageBuf, depth: &'static str, comps: usize, rows: Rows| {
        let t = Instant::now();
        let (st, out) = p.render(&inst, src, depth, comps, rows, None, 1.0, 0.0);
        (st, out, t.elapsed())
    };
    // The common case: 8-bit RGBA in and out, unpadded, rows bottom-up.
    let render8 = || {
        render(
            ImageBuf::from_rgba8(&img, DEPTH_BYTE, 4, Rows::BottomUp, 0),
            DEPTH_BYTE,
            4,
            Rows::BottomUp,
        )
    };

    // --- 8-bit RGBA, padded rows.
    let (st, out8, t_first) = render(
        ImageBuf::from_rgba8(&img, DEPTH_BYTE, 4, Rows::BottomUp, 12),
        DEPTH_BYTE,
        4,
        Rows::BottomUp,
    );
    assert_eq!(
        st,
        STAT_OK,
        "8-bit render: {:?}",
        inst.persistent.lock().unwrap()
    );
    eprintln!(
        "first 8-bit render (engine load + candidates + refine): {:.1} ms",
        t_first.as_secs_f64() * 1e3
    );
    assert!(is_mapped("libttpo.so"), "the first render loads libttpo");
    // Now the instance's metrics hint is libttpo's list: core's table, every entry.
    let listed = hint(&inst);
    for m in ttpo::scoring::METRICS {
        assert!(
            listed.contains(&format!("\n{}: {}", m.name, m.description)),
            "{} missing from the hint: {listed}",
            m.name
        );
    }
    assert!(!listed.contains("once the effect has rendered"), "{listed}");
    // A describe once the library is loaded lists them too.
    let f2 = p.describe_in_context(&d, CONTEXT_FILTER).unwrap();
    assert_eq!(hint(&f2), listed);
    assert!(engine_runs(&inst) > 0, "progress suite used");
    assert_eq!(
        inst.progress_starts.load(Ordering::SeqCst),
        inst.progress_ends.load(Ordering::SeqCst)
    );
    // The job's time estimate (ttpo_job_estimate) labels the progress bar and is logged.
    assert_eq!(inst.progress_labels.lock().unwrap().len(), 1);
    let label = last_label(&inst);
    assert_estimate_label(&label);
    assert!(
        inst.messages
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.kind == "OfxMessageLog" && m.text == label && !m.persistent),
        "the estimate is logged"
    );
    let d8 = out8.max_diff(&input8);
    assert!(
        d8 > 0.05,
        "output must differ from the input (max diff {d8})"
    );
    out8.to_rgba8()
        .save(temp_dir("out").join("out8.png"))
        .unwrap();

    // --- float RGBA, negative rowBytes in and out: same result as 8-bit within rounding.
    let (st, outf, _) = render(
        ImageBuf::from_rgba8(&img, DEPTH_FLOAT, 4, Rows::TopDown, 0),
        DEPTH_FLOAT,
        4,
        Rows::TopDown,
    );
    assert_eq!(
        st,
        STAT_OK,
        "float render: {:?}",
        inst.persistent.lock().unwrap()
    );
    let df = outf.max_diff(&out8);
    assert!(df <= 1.0 / 255.0 + 1e-4, "float vs 8-bit: {df}");

    // --- 16-bit RGB with padding.
    let (st, out16, _) = render(
        ImageBuf::from_rgba8(&img, DEPTH_SHORT, 3, Rows::BottomUp, 6),
        DEPTH_SHORT,
        3,
        Rows::BottomUp,
    );
    assert_eq!(
        st,
        STAT_OK,
        "16-bit RGB render: {:?}",
        inst.persistent.lock().unwrap()
    );
    let d16 = out16.max_diff(&out8);
    assert!(d16 <= 2.0 / 255.0, "16-bit RGB vs 8-bit RGBA: {d16}");

    // --- same parameters again: a cache hit (no engine call), identical and much faster.
    let runs = engine_runs(&inst);
    let (st, again, t_hit) = render8();
    assert_eq!(st, STAT_OK);
    assert_eq!(
        engine_runs(&inst),
        runs,
        "cache hit must not call the engine"
    );
    assert_eq!(again.max_diff(&out8), 0.0);
    eprintln!(
        "cache-hit render: {:.2} ms (first {:.1} ms)",
        t_hit.as_secs_f64() * 1e3,
        t_first.as_secs_f64() * 1e3
    );
    assert!(
        t_hit * 5 < t_first,
        "cache hit {t_hit:?} vs first {t_first:?}"
    );

    // --- mix 0.5: still cached; halfway between input and result.
    p.set_param(&inst, "mix", Val::Dbl(0.5));
    let (st, mixed, _) = render8();
    assert_eq!(st, STAT_OK);
    assert_eq!(engine_runs(&inst), runs);
    for r in 0..64 {
        for x in 0..64 {
            let (a, o, m) = (input8.get(x, r), out8.get(x, r), mixed.get(x, r));
            for c in 0..3 {
                assert!((m[c] - (a[c] + o[c]) / 2.0).abs() <= 1.0 / 255.0 + 1e-4);
            }
        }
    }
    p.set_param(&inst, "mix", Val::Dbl(1.0));

    // --- contact sheet (libttpo's, as the CLI's) and one candidate: from the cached
    // candidates. The sheet fills the frame; the chosen pair is framed green and red.
    let green = |img: &ImageBuf| count_rgb(img, ttpo::sheet::BORDER_PREFERRED);
    let red = |img: &ImageBuf| count_rgb(img, ttpo::sheet::BORDER_DISPREFERRED);
    p.set_param(&inst, "view", Val::Int(1));
    let (st, sheet, _) = render8();
    assert_eq!(st, STAT_OK, "sheet: {:?}", inst.persistent.lock().unwrap());
    assert_eq!(engine_runs(&inst), runs);
    assert_eq!((sheet.width(), sheet.height()), (64, 64));
    assert!(sheet.max_diff(&out8) > 0.05 && sheet.max_diff(&input8) > 0.05);
    let (g, r) = (green(&sheet), red(&sheet));
    assert!(
        g >= 8 && r >= 8,
        "frames of the chosen pair: {g} green, {r} red"
    );
    sheet
        .to_rgba8()
        .save(temp_dir("out").join("sheet.png"))
        .unwrap();
    // A manual choice moves the frames (no model call): swapping the pair swaps them.
    p.set_param(&inst, "selection", Val::Int(1));
    p.set_param(&inst, "preferred", Val::Int(1));
    p.set_param(&inst, "dispreferred", Val::Int(2));
    let (st, sheet12, _) = render8();
    assert_eq!(st, STAT_OK);
    p.set_param(&inst, "preferred", Val::Int(2));
    p.set_param(&inst, "dispreferred", Val::Int(1));
    let (st, sheet21, _) = render8();
    assert_eq!(st, STAT_OK);
    assert_eq!(engine_runs(&inst), runs);
    assert!(green(&sheet12) >= 8 && red(&sheet12) >= 8);
    assert!(sheet12.max_diff(&sheet21) > 0.5, "frames swapped");
    // Tile 1's frame pixels are green in one and red in the other.
    let swapped = (0..64)
        .flat_map(|r| (0..64).map(move |x| (x, r)))
        .filter(|&(x, r)| {
            let px = |img: &ImageBuf| {
                let v = img.get(x, r);
                [v[0], v[1], v[2]].map(|c| (c * 255.0).round() as u8)
            };
            px(&sheet12) == ttpo::sheet::BORDER_PREFERRED
                && px(&sheet21) == ttpo::sheet::BORDER_DISPREFERRED
        })
        .count();
    assert!(swapped >= 8, "{swapped} pixels went from green to red");
    p.set_param(&inst, "selection", Val::Int(0));
    p.set_param(&inst, "view", Val::Int(2));
    p.set_param(&inst, "candidate", Val::Int(0));
    let (st, c0, _) = render8();
    assert_eq!(st, STAT_OK);
    assert!(
        c0.max_diff(&input8) <= 1.0 / 255.0 + 1e-4,
        "candidate 0 is the input"
    );
    p.set_param(&inst, "candidate", Val::Int(9));
    let (st, _, _) = render8();
    assert_eq!(st, STAT_FAILED);
    assert!(inst
        .persistent
        .lock()
        .unwrap()
        .as_deref()
        .unwrap_or("")
        .contains("Candidate 9"));
    p.set_param(&inst, "view", Val::Int(0));

    // --- manual selection: only a refinement runs, labelled with its own estimate.
    p.set_param(&inst, "selection", Val::Int(1));
    p.set_param(&inst, "preferred", Val::Int(2));
    p.set_param(&inst, "dispreferred", Val::Int(0));
    let starts = inst.progress_starts.load(Ordering::SeqCst);
    let (st, manual, _) = render8();
    assert_eq!(st, STAT_OK, "manual: {:?}", inst.persistent.lock().unwrap());
    assert_eq!(inst.progress_starts.load(Ordering::SeqCst), starts + 1);
    assert_estimate_label(&last_label(&inst));
    assert!(
        inst.persistent.lock().unwrap().is_none(),
        "success clears the persistent message"
    );
    assert!(engine_runs(&inst) > runs);
    assert!(manual.max_diff(&input8) > 0.05);
    p.set_param(&inst, "selection", Val::Int(0));

    // --- render window: only the left half is written.
    let (st, half) = p.render(
        &inst,
        ImageBuf::from_rgba8(&img, DEPTH_BYTE, 4, Rows::BottomUp, 0),
        DEPTH_BYTE,
        4,
        Rows::BottomUp,
        Some([0, 0, 32, 64]),
        1.0,
        0.0,
    );
    assert_eq!(st, STAT_OK);
    for r in 0..64 {
        for x in 0..64 {
            if x < 32 {
                assert_eq!(half.get(x, r), out8.get(x, r));
            } else {
                assert_eq!(half.get(x, r), [0.0; 4]);
            }
        }
    }

    // --- render scale 0.5 (draft: a quarter of the steps) on the half-size image.
    let small = image::imageops::resize(&img, 32, 32, image::imageops::FilterType::Triangle);
    let runs = engine_runs(&inst);
    let t = Instant::now();
    let (st, draft) = p.render(
        &inst,
        ImageBuf::from_rgba8(&small, DEPTH_BYTE, 4, Rows::BottomUp, 0),
        DEPTH_BYTE,
        4,
        Rows::BottomUp,
        None,
        0.5,
        0.0,
    );
    assert_eq!(st, STAT_OK);
    assert!(engine_runs(&inst) > runs);
    assert_eq!((draft.width(), draft.height()), (32, 32));
    eprintln!(
        "draft render at scale 0.5: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    // --- another seed: the engine runs again and the result changes.
    p.set_param(&inst, "seed", Val::Int(8));
    let runs = engine_runs(&inst);
    let (st, seed8, _) = render8();
    assert_eq!(st, STAT_OK);
    assert!(engine_runs(&inst) > runs);
    assert!(seed8.max_diff(&out8) > 0.0);

    // --- deterministic: after purging the caches, seed 7 gives the same bytes again.
    assert_eq!(
        p.action(ACTION_PURGE_CACHES, inst.handle(), None, None),
        STAT_OK
    );
    p.set_param(&inst, "seed", Val::Int(7));
    let runs = engine_runs(&inst);
    let (st, again, _) = render8();
    assert_eq!(st, STAT_OK);
    assert!(engine_runs(&inst) > runs, "purged: the engine runs");
    assert_eq!(
        again.max_diff(&out8),
        0.0,
        "same frame + parameters => same output"
    );
    // The sheet too: drawn again from the new job, byte for byte the same.
    p.set_param(&inst, "view", Val::Int(1));
    let (st, sheet_again, _) = render8();
    assert_eq!(st, STAT_OK);
    assert_eq!(
        sheet_again.max_diff(&sheet),
        0.0,
        "the sheet is deterministic"
    );
    p.set_param(&inst, "view", Val::Int(0));

    // --- abort: the host says "abort" at the 3rd poll; the render fails promptly.
    p.set_param(&inst, "seed", Val::Int(99));
    inst.polls.store(0, Ordering::SeqCst);
    inst.abort_after.store(2, Ordering::SeqCst);
    let msgs = errors(&inst);
    let (st, _, t_abort) = render8();
    assert_eq!(st, STAT_FAILED, "aborted render fails");
    assert_eq!(
        inst.polls.load(Ordering::SeqCst),
        3,
        "stops at the first poll that says abort"
    );
    assert_eq!(errors(&inst), msgs, "an abort is not an error message");
    eprintln!(
        "aborted render returned after {:.1} ms",
        t_abort.as_secs_f64() * 1e3
    );
    assert!(
        t_abort < t_first,
        "abort {t_abort:?} vs full render {t_first:?}"
    );
    inst.abort_after.store(-1, Ordering::SeqCst);
    let (st, _, _) = render8();
    assert_eq!(st, STAT_OK, "renders again after an abort");

    // --- bad parameters: a clean failure with a persistent message, cleared by the next success.
    p.set_param(&inst, "strengths", s("0.3,abc"));
    let (st, _, _) = render8();
    assert_eq!(st, STAT_FAILED);
    assert!(inst
        .persistent
        .lock()
        .unwrap()
        .as_deref()
        .unwrap_or("")
        .contains("Strengths"));
    p.set_param(&inst, "strengths", s("0.3,0.6"));
    p.set_param(&inst, "modelDir", s("/nonexistent/model"));
    let (st, _, _) = render8();
    assert_eq!(st, STAT_FAILED);
    let m = inst.persistent.lock().unwrap().clone().unwrap_or_default();
    assert!(m.contains("model"), "{m}");
    p.set_param(&inst, "modelDir", s(tiny_model().to_str().unwrap()));
    let (st, _, _) = render8();
    assert_eq!(st, STAT_OK);
    assert!(inst.persistent.lock().unwrap().is_none());

    // --- destroy, unload (dlclose in Drop).
    assert_eq!(p.destroy_instance(inst), STAT_OK);
    drop(p);
}

#[test]
fn missing_libttpo_fails_cleanly() {
    if std::env::var_os("TTPO_LIBRARY").is_some() {
        eprintln!("TTPO_LIBRARY is set: skipped");
        return;
    }
    // A bundle holding only the plug-in binary.
    let src = ttpo_ofx_host::binary_in_bundle(&bundle());
    let b = temp_dir("nolib").join("TTPO.ofx.bundle");
    std::fs::create_dir_all(b.join("Contents/Linux-x86-64")).unwrap();
    std::fs::copy(&src, b.join("Contents/Linux-x86-64/TTPO.ofx")).unwrap();
    let p = Plugin::load(&b).expect("loads without libttpo");
    let d = p.describe().expect("describe works without libttpo");
    let f = p.describe_in_context(&d, CONTEXT_FILTER).unwrap();
    let inst = p.create_instance(&f, CONTEXT_FILTER).unwrap();
    p.set_param(&inst, "modelDir", s(tiny_model().to_str().unwrap()));
    let img = photo(64);
    let t = Instant::now();
    let (st, _) = p.render(
        &inst,
        ImageBuf::from_rgba8(&img, DEPTH_BYTE, 4, Rows::BottomUp, 0),
        DEPTH_BYTE,
        4,
        Rows::BottomUp,
        None,
        1.0,
        0.0,
    );
    assert_eq!(st, STAT_FAILED);
    assert!(t.elapsed() < Duration::from_secs(2));
    let m = inst
        .persistent
        .lock()
        .unwrap()
        .clone()
        .expect("a persistent message");
    eprintln!("missing libttpo message: {m}");
    assert!(m.contains("libttpo") && m.contains("no such file"), "{m}");
    let msgs = inst.messages.lock().unwrap().clone();
    assert!(msgs
        .iter()
        .all(|m| m.kind == "OfxMessageError" && m.id == "org.ttpo.TTPO"));
    assert_eq!(p.destroy_instance(inst), STAT_OK);
}
