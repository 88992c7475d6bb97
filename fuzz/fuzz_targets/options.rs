//! Options: every C setter with arbitrary numbers and strings, then `ttpo_job_new` (which
//! validates the whole `ttpo::Options`), and the CLI's strength strings.
//!
//! Each setter that succeeds is mirrored on a Rust `ttpo::Options` as the header documents
//! it; at the end `ttpo_job_new` must agree with `Options::validate` on that mirror. The
//! strength strings go through the CLI's parsers (`--strengths` is split on commas and each
//! piece parsed as f64 by clap; `--refine-start` is `ttpo::RefineStart::from_str`) and the
//! C setters, which must accept exactly what validation accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::ffi::{c_char, CString};
use std::path::PathBuf;
use ttpo::{Fusion, Options, PadMode, RefineStart};
use ttpo_ffi::image::ttpo_image;
use ttpo_ffi::job::{ttpo_job_free, ttpo_job_new};
use ttpo_ffi::options::*;
use ttpo_fuzz::{check_status, engine, Bytes};

const OK: u32 = 0;
const NULL_POINTER: u32 = 1;
const INVALID_ARGUMENT: u32 = 2;
const INVALID_IMAGE: u32 = 3;

/// A C string from the input (interior NULs cut it short, like C would), or NULL.
fn c_string(b: &mut Bytes) -> Option<CString> {
    if b.u8() == 0xff {
        return None;
    }
    let s = b.string();
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    Some(CString::new(&s[..end]).expect("no NUL"))
}

fn ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

/// A number that is often on a boundary.
fn number(b: &mut Bytes) -> f64 {
    match b.u8() % 4 {
        0 => b.f64(),
        1 => [0.0, -0.0, 1.0, -1.0, 0.5, 1e-300, f64::NAN, f64::INFINITY][b.u8() as usize % 8],
        _ => b.u16() as f64 / 1000.0 - 2.0,
    }
}

fn small(b: &mut Bytes) -> u32 {
    match b.u8() % 4 {
        0 => b.u32(),
        _ => b.u16() as u32 % 1100,
    }
}

/// The metric list the setter documents: comma-separated, trimmed, empty pieces dropped;
/// names or presets (kept as given; a preset stands for its metrics).
fn metric_list(s: &str) -> Option<Vec<String>> {
    let v: Vec<String> = s
        .split(',')
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    ttpo::scoring::learned::expand(&v)
        .iter()
        .all(|n| ttpo::scoring::metric_info(n).is_some())
        .then_some(v)
}

unsafe fn setters(b: &mut Bytes, o: *mut ttpo_options, m: &mut Options) {
    for _ in 0..24 {
        if b.is_empty() {
            break;
        }
        let op = b.u8() % 24;
        let (name, st, expect_ok) = match op {
            0 => {
                let v = b.u64();
                let st = ttpo_options_set_seed(o, v);
                if st == OK {
                    m.seed = v;
                }
                ("seed", st, true)
            }
            1 => {
                let v = small(b);
                let st = ttpo_options_set_steps(o, v);
                if st == OK {
                    m.steps = v as usize;
                }
                ("steps", st, (1..=1000).contains(&v))
            }
            2 => {
                let v = small(b);
                let st = ttpo_options_set_seeds_per_strength(o, v);
                if st == OK {
                    m.seeds_per_strength = v as usize;
                }
                ("seeds_per_strength", st, (1..=64).contains(&v))
            }
            3 => {
                let v = number(b);
                let st = ttpo_options_set_cfg_scale(o, v);
                if st == OK {
                    m.cfg_scale = v;
                }
                ("cfg_scale", st, v.is_finite() && v >= 0.0)
            }
            4 => {
                let v = small(b);
                let st = ttpo_options_set_refine_steps(o, v);
                if st == OK {
                    m.refine.steps = v as usize;
                }
                ("refine_steps", st, (1..=1000).contains(&v))
            }
            5 => {
                let v = number(b);
                let st = ttpo_options_set_alpha(o, v);
                if st == OK {
                    m.refine.alpha = v;
                }
                ("alpha", st, v.is_finite() && v >= 0.0)
            }
            6 => {
                let v = number(b);
                let st = ttpo_options_set_guidance(o, v);
                if st == OK {
                    m.refine.guidance = v;
                }
                ("guidance", st, v.is_finite() && v >= 0.0)
            }
            7 => {
                let v = number(b) * 1000.0;
                let st = ttpo_options_set_t1(o, v);
                if st == OK {
                    m.refine.t1 = v;
                }
                ("t1", st, v.is_finite())
            }
            8 => {
                let v = number(b) * 1000.0;
                let st = ttpo_options_set_t2(o, v);
                if st == OK {
                    m.refine.t2 = v;
                }
                ("t2", st, v.is_finite())
            }
            9 => {
                let v = number(b);
                let st = ttpo_options_set_d0(o, v);
                if st == OK {
                    m.refine.d0 = v;
                }
                ("d0", st, v.is_finite() && v > 0.0)
            }
            10 => {
                let v = number(b);
                let st = ttpo_options_set_refine_start(o, v);
                if st == OK {
                    m.refine.start = if v == 0.0 {
                        RefineStart::Noise
                    } else {
                        RefineStart::Strength(v)
                    };
                }
                ("refine_start", st, v == 0.0 || (v > 0.0 && v <= 1.0))
            }
            11 => {
                let v = number(b);
                let st = ttpo_options_set_eta(o, v);
                if st == OK {
                    m.eta = v;
                }
                ("eta", st, (0.0..=1.0).contains(&v))
            }
            12 => {
                let v = small(b);
                let st = ttpo_options_set_max_batch(o, v);
                if st == OK {
                    m.max_batch = v as usize;
                }
                ("max_batch", st, v >= 1)
            }
            13 => {
                let v = match b.u8() % 3 {
                    0 => b.u64(),
                    1 => 0,
                    _ => b.u16() as u64 * 16,
                };
                let st = ttpo_options_set_max_pixels(o, v);
                if st == OK {
                    m.max_pixels = v as usize;
                }
                ("max_pixels", st, v > 0)
            }
            14 => {
                let v = small(b);
                let st = ttpo_options_set_memory_budget_mib(o, v);
                if st == OK {
                    m.tiling.memory_budget_mib = v as usize;
                }
                ("memory_budget_mib", st, v >= 64)
            }
            15 => {
                let (u, v) = (small(b), small(b));
                let st = ttpo_options_set_tile_size(o, u, v);
                if st == OK {
                    m.tiling.unet_tile = u as usize;
                    m.tiling.vae_tile = v as usize;
                }
                ("tile_size", st, true)
            }
            16 => {
                let v = b.u8() as u32 % 4;
                let st = ttpo_options_set_fusion(o, v);
                if st == OK {
                    m.scoring.fusion = [Fusion::ZScore, Fusion::Entropy][v as usize];
                }
                ("fusion", st, v < 2)
            }
            17 => {
                let v = b.u8() as u32 % 4;
                let st = ttpo_options_set_pad_mode(o, v);
                if st == OK {
                    m.pad_mode = [PadMode::Reflect, PadMode::Zero][v as usize];
                }
                ("pad_mode", st, v < 2)
            }
            18 => {
                let n = b.u8() as usize % 10;
                let v: Vec<f64> = (0..n).map(|_| number(b)).collect();
                let null = b.u8() == 0xff;
                let p = if null { std::ptr::null() } else { v.as_ptr() };
                let st = ttpo_options_set_strengths(o, p, n);
                if st == OK {
                    m.strengths = v.clone();
                }
                let ok = !null && n >= 1 && v.iter().all(|s| (0.0..=1.0).contains(s));
                ("strengths", st, ok)
            }
            19 | 20 | 21 => {
                let s = c_string(b);
                let text = s.as_ref().and_then(|c| c.to_str().ok()).map(str::to_owned);
                let (name, st, ok) = match op {
                    19 => {
                        let st = ttpo_options_set_prompt(o, ptr(&s));
                        if st == OK {
                            m.prompt = text.clone().expect("valid UTF-8");
                        }
                        ("prompt", st, text.is_some())
                    }
                    20 => {
                        let st = ttpo_options_set_negative_prompt(o, ptr(&s));
                        if st == OK {
                            m.negative_prompt = text.clone().expect("valid UTF-8");
                        }
                        ("negative_prompt", st, text.is_some())
                    }
                    _ => {
                        let st = ttpo_options_set_metrics(o, ptr(&s));
                        let list = text.as_deref().and_then(metric_list);
                        if st == OK {
                            m.scoring.metrics = list.clone().expect("accepted list");
                        }
                        ("metrics", st, list.is_some())
                    }
                };
                if s.is_none() {
                    assert_eq!(st, NULL_POINTER, "{name}(NULL)");
                }
                (name, st, ok)
            }
            _ => {
                // Paths: only NULL, "" and a folder that does not exist (the fuzzer must
                // not make the metrics read arbitrary files).
                let k = b.u8() % 3;
                let s = [None, Some(c""), Some(c"/nonexistent/ttpo-fuzz")][k as usize];
                let p = s.map_or(std::ptr::null(), |c| c.as_ptr());
                let v = s
                    .filter(|c| !c.is_empty())
                    .map(|_| PathBuf::from("/nonexistent/ttpo-fuzz"));
                let (name, st) = if op == 22 {
                    ("brisque_model", ttpo_options_set_brisque_model(o, p))
                } else {
                    ("clip_model", ttpo_options_set_clip_model(o, p))
                };
                if st == OK {
                    if op == 22 {
                        m.scoring.brisque_model = v;
                    } else {
                        m.scoring.clip_model = v;
                    }
                }
                (name, st, true)
            }
        };
        check_status(name, st);
        assert!(
            st == OK || st == INVALID_ARGUMENT || st == NULL_POINTER,
            "{name}: status {st}"
        );
        assert_eq!(st == OK, expect_ok, "{name}: status {st}");
    }
}

/// The CLI's strength strings against the C setters and validation.
fn strength_strings(b: &mut Bytes) {
    let s = b.string();
    let Ok(s) = std::str::from_utf8(s) else {
        return;
    };
    // `--strengths S,S,...` and `ttpo_options_set_strengths_str`: core's one parser.
    if let Ok(v) = ttpo::options::parse_strengths(s) {
        // SAFETY: options created and freed here; the string outlives the call.
        let st_text = unsafe {
            let o = ttpo_options_new();
            let c = CString::new(s.replace('\0', " ")).expect("no NUL");
            let st = ttpo_options_set_strengths_str(o, c.as_ptr());
            ttpo_options_free(o);
            st
        };
        check_status("strengths_str", st_text);
        let rust_ok = Options {
            strengths: v.clone(),
            ..Options::default()
        }
        .validate()
        .is_ok();
        // SAFETY: options created and freed here; `v` outlives the call.
        let st = unsafe {
            let o = ttpo_options_new();
            let st = ttpo_options_set_strengths(o, v.as_ptr(), v.len());
            ttpo_options_free(o);
            st
        };
        check_status("strengths", st);
        assert_eq!(
            st == OK,
            rust_ok,
            "--strengths {s:?}: C {st}, Rust {rust_ok}"
        );
        if !s.contains('\0') {
            assert_eq!(st_text, st, "strengths_str {s:?}");
        }
    }
    // `--refine-start noise|S`.
    if let Ok(start) = s.parse::<RefineStart>() {
        let mut o = Options::default();
        o.refine.start = start;
        let rust_ok = o.validate().is_ok();
        match start {
            RefineStart::Noise => assert!(rust_ok),
            RefineStart::Strength(v) => {
                // SAFETY: as above.
                let st = unsafe {
                    let o = ttpo_options_new();
                    let st = ttpo_options_set_refine_start(o, v);
                    ttpo_options_free(o);
                    st
                };
                check_status("refine_start", st);
                // 0 means "noise" in C; on the command line it is an out-of-range strength.
                if v != 0.0 {
                    assert_eq!(
                        st == OK,
                        rust_ok,
                        "--refine-start {s:?}: C {st}, Rust {rust_ok}"
                    );
                }
            }
        }
    } else {
        assert!(!s.eq_ignore_ascii_case("noise") && s.parse::<f64>().is_err());
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    strength_strings(&mut b);
    let mut mirror = Options::default();
    // SAFETY: the options object lives for this block; the engine for the process.
    unsafe {
        let o = ttpo_options_new();
        assert!(!o.is_null());
        setters(&mut b, o, &mut mirror);
        assert_eq!(setters_on_null(), NULL_POINTER);
        // Cheap for Job::new: the metrics are only built, never run.
        let mut px = [128u8; 16 * 16 * 3];
        let img = ttpo_image {
            data: px.as_mut_ptr().cast(),
            width: 16,
            height: 16,
            stride: 48,
            format: 0,
            layout: 1,
        };
        let mut job = std::ptr::null_mut();
        let st = ttpo_job_new(engine(), o, &img, &mut job);
        ttpo_options_free(o);
        ttpo_job_free(job);
        check_status("ttpo_job_new", st);
        match mirror.validate() {
            // The boundary checks the image against max_pixels before the options.
            _ if mirror.max_pixels < 256 => assert_eq!(st, INVALID_IMAGE),
            Err(e) => assert_eq!(st, INVALID_ARGUMENT, "mirror invalid ({e}) but status {st}"),
            Ok(()) => {
                let needs_model = |name: &str, path: &Option<PathBuf>| {
                    let listed = mirror.scoring.metrics.iter().any(|m| m == name)
                        || (mirror.scoring.metrics.is_empty() && path.is_some());
                    listed
                };
                // The learned metrics need pyiqa's checkpoints, which a fuzzing machine has
                // in none of the folders looked in.
                let learned = ttpo::scoring::learned::expand(&mirror.scoring.metrics)
                    .iter()
                    .any(|m| ttpo::scoring::learned::checkpoint(m).is_some());
                let files = needs_model("brisque", &mirror.scoring.brisque_model)
                    || needs_model("clipiqa", &mirror.scoring.clip_model)
                    || learned;
                if files {
                    // A metric whose model is missing: an option error or a missing file.
                    assert!(st != OK, "metric without its model accepted");
                } else {
                    assert_eq!(st, OK, "mirror valid but status {st}");
                }
            }
        }
    }
});

/// Every setter on a NULL options object: NULL_POINTER (the first status that differs).
unsafe fn setters_on_null() -> u32 {
    let n = std::ptr::null_mut();
    let all = [
        ttpo_options_set_seed(n, 1),
        ttpo_options_set_steps(n, 1),
        ttpo_options_set_seeds_per_strength(n, 1),
        ttpo_options_set_cfg_scale(n, 1.0),
        ttpo_options_set_refine_steps(n, 1),
        ttpo_options_set_alpha(n, 1.0),
        ttpo_options_set_guidance(n, 1.0),
        ttpo_options_set_t1(n, 1.0),
        ttpo_options_set_t2(n, 1.0),
        ttpo_options_set_d0(n, 1.0),
        ttpo_options_set_refine_start(n, 0.5),
        ttpo_options_set_eta(n, 0.5),
        ttpo_options_set_max_batch(n, 1),
        ttpo_options_set_max_pixels(n, 1),
        ttpo_options_set_memory_budget_mib(n, 64),
        ttpo_options_set_tile_size(n, 0, 0),
        ttpo_options_set_fusion(n, 0),
        ttpo_options_set_pad_mode(n, 0),
        ttpo_options_set_strengths(n, [0.5].as_ptr(), 1),
        ttpo_options_set_prompt(n, c"x".as_ptr()),
        ttpo_options_set_negative_prompt(n, c"x".as_ptr()),
        ttpo_options_set_metrics(n, c"niqe".as_ptr()),
        ttpo_options_set_brisque_model(n, std::ptr::null()),
        ttpo_options_set_clip_model(n, std::ptr::null()),
        ttpo_options_set_iqa_model_dir(n, std::ptr::null()),
        ttpo_options_set_strengths_str(n, c"0.5".as_ptr()),
        ttpo_options_set_unet_tile(n, 0),
        ttpo_options_set_vae_tile(n, 0),
        ttpo_options_set_tile_overlap(n, 0.25),
        ttpo_options_set_metric_max_pixels(n, 4096),
        ttpo_options_apply_preset(n, c"fast".as_ptr()),
    ];
    all.into_iter()
        .find(|&s| s != NULL_POINTER)
        .unwrap_or(NULL_POINTER)
}
