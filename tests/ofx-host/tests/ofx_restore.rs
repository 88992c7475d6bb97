//! "Restore first" through the OpenFX host: the choice lists core's networks, the region of
//! definition is the source's times the network's scale, the render writes the larger frame
//! (candidate 0 is exactly the network's output, the refined view differs from it), mix 0
//! shows the input repeated at the larger size and is no identity, and missing network files
//! fail the render with the engine's message.
//!
//! One test in its own binary: it sets the process environment (TTPO_RESTORE_DIR, the
//! engine's default folder, which the effect does not override) between renders.

mod common;

use common::{bundle, photo, render8, s, temp_dir, tiny_model};
use ttpo::restore::{self, restore_image, RestoreKind};
use ttpo_ofx_host::ofx::*;
use ttpo_ofx_host::{Effect, ImageBuf, Plugin, Rows, Val};

fn persistent(inst: &Effect) -> String {
    inst.persistent.lock().unwrap().clone().unwrap_or_default()
}

fn restore_dir() -> std::path::PathBuf {
    std::env::var_os("TTPO_ASSETS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| common::root().join(".cache/assets"))
        .join("restore")
}

/// Largest channel difference (0..1) between `out` and `img` (RGBA f32, top row first).
fn diff_to(out: &ImageBuf, img: &ttpo::Image) -> f32 {
    assert_eq!((out.width(), out.height()), (img.width(), img.height()));
    let mut m = 0f32;
    for r in 0..out.height() {
        for x in 0..out.width() {
            let (v, w) = (out.get(x, r), img.pixel(x, r));
            for c in 0..3 {
                m = m.max((v[c] - w[c]).abs());
            }
        }
    }
    m
}

#[test]
fn restore_first_scales_the_region_and_the_frame() {
    std::env::set_var("TTPO_RESTORE_DIR", restore_dir());
    let p = Plugin::load(&bundle()).expect("plug-in loads");
    let d = p.describe().unwrap();
    let f = p.describe_in_context(&d, CONTEXT_FILTER).unwrap();

    // The choice: None, then core's networks in core's order (a host saves the index).
    let param = f.param("restore").expect("a restore parameter");
    assert_eq!(param.kind, "OfxParamTypeChoice");
    let mut want = vec!["None".to_string()];
    want.extend(restore::NAMES.iter().map(|n| n.to_string()));
    let options: Vec<String> = (0..want.len() + 1)
        .filter_map(|i| param.props.get_str("OfxParamPropChoiceOption", i))
        .collect();
    assert_eq!(options, want);
    assert_eq!(param.props.get_int("OfxParamPropDefault", 0), Some(0));
    let index = |k: RestoreKind| 1 + RestoreKind::ALL.iter().position(|x| *x == k).unwrap() as i32;

    let inst = p.create_instance(&f, CONTEXT_FILTER).unwrap();
    p.set_param(&inst, "modelDir", s(tiny_model().to_str().unwrap()));
    p.set_param(&inst, "strengths", s("0.3"));
    p.set_param(&inst, "steps", Val::Int(2));
    p.set_param(&inst, "metrics", s("sharpness"));
    p.set_param(&inst, "seed", Val::Int(3));
    let img = photo(48);
    let src = || ImageBuf::from_rgba8(&img, DEPTH_BYTE, 4, Rows::BottomUp, 0);

    // The region of definition: the host's default without a restore step, scaled with one
    // (every network: the factor is the plug-in's copy, checked here against core's).
    assert_eq!(p.region_of_definition(&inst, 1.0, 0.0), None);
    *inst.clip("Source").unwrap().image.lock().unwrap() = Some(src());
    for k in RestoreKind::ALL {
        p.set_param(&inst, "restore", Val::Int(index(k)));
        let f = k.scale() as f64;
        assert_eq!(
            p.region_of_definition(&inst, 1.0, 0.0),
            Some([0.0, 0.0, 48.0 * f, 48.0 * f]),
            "{}",
            k.name()
        );
    }

    // rdn-x2: the frame is 96x96; candidate 0 is the network's output on the input.
    p.set_param(&inst, "restore", Val::Int(index(RestoreKind::RdnX2)));
    let (st, refined) = render8(&p, &inst, &img);
    assert_eq!(st, STAT_OK, "restore render: {}", persistent(&inst));
    assert_eq!((refined.width(), refined.height()), (96, 96));
    let net = restore::load(RestoreKind::RdnX2, restore_dir()).unwrap();
    let rgb = img
        .pixels()
        .flat_map(|p| (0..3).map(move |c| p.0[c] as f32 / 255.0));
    let input =
        ttpo::Image::from_rgb(img.width() as usize, img.height() as usize, rgb.collect()).unwrap();
    let pure = restore_image(
        net.as_ref(),
        &input,
        restore::JOB_TILE,
        restore::JOB_OVERLAP,
        &mut |_, _| true,
    )
    .unwrap();
    p.set_param(&inst, "view", Val::Int(2));
    p.set_param(&inst, "candidate", Val::Int(0));
    let (st, cand0) = render8(&p, &inst, &img);
    assert_eq!(st, STAT_OK, "candidate 0: {}", persistent(&inst));
    let d0 = diff_to(&cand0, &pure);
    let dr = diff_to(&refined, &pure);
    eprintln!("rdn-x2 48 -> 96: candidate 0 vs restore_image {d0:.4}, refined vs it {dr:.4}");
    assert!(
        d0 <= 0.5 / 255.0 + 1e-6,
        "candidate 0 is the network's output: {d0}"
    );
    assert!(
        dr > 8.0 / 255.0,
        "the refined view is not the network's output alone: {dr}"
    );

    // Mix 0 with a restore step: no identity (the frame is larger), the input repeated 2x.
    p.set_param(&inst, "view", Val::Int(0));
    p.set_param(&inst, "mix", Val::Dbl(0.0));
    let ia = ttpo_ofx_host::PropSet::new();
    ia.set_dbls("OfxPropTime", &[0.0]);
    ia.set_dbls("OfxImageEffectPropRenderScale", &[1.0, 1.0]);
    let oa = ttpo_ofx_host::PropSet::new();
    assert_eq!(
        p.action(ACTION_IS_IDENTITY, inst.handle(), Some(&ia), Some(&oa)),
        STAT_REPLY_DEFAULT
    );
    let (st, mixed) = render8(&p, &inst, &img);
    assert_eq!(st, STAT_OK);
    let input8 = src();
    let mut m = 0f32;
    for r in 0..96 {
        for x in 0..96 {
            let (a, b) = (mixed.get(x, r), input8.get(x / 2, r / 2));
            for c in 0..3 {
                m = m.max((a[c] - b[c]).abs());
            }
        }
    }
    assert_eq!(m, 0.0, "mix 0: the input, each pixel 2x2");
    p.set_param(&inst, "mix", Val::Dbl(1.0));

    // Missing network files (an empty folder; another seed, so no cached result): the
    // engine's message, and the render fails.
    let empty = temp_dir("empty-restore");
    std::env::set_var("TTPO_RESTORE_DIR", &empty);
    p.set_param(&inst, "seed", Val::Int(4));
    let (st, _) = render8(&p, &inst, &img);
    assert_eq!(st, STAT_FAILED);
    let m = persistent(&inst);
    eprintln!("missing files: {m}");
    assert!(
        m.contains("esrgan-slim/x2/model.json") && m.contains("@upscalerjs/esrgan-slim"),
        "{m}"
    );
    assert_eq!(p.destroy_instance(inst), STAT_OK);
}
