//! Sequences of C calls on one job from two threads. The input decodes into two short
//! lists of calls (cancel, generate, refine, run, choose, queries, callback setters,
//! last-error reads) that two threads run at once on one job; the engine is the tiny model,
//! loaded once per process, and the job is made cheap (16x16 input, one strength, one seed,
//! one to three steps, the sharpness metric only).
//!
//! Property: every call returns a defined status (never a caught panic), outputs are
//! written only on success, callbacks get sane numbers, and nothing touches freed or
//! foreign memory (AddressSanitizer). Whether a cancel is honoured is the stress test's
//! business, not this target's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::ffi::{c_void, CStr};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::Barrier;
use ttpo_ffi::image::ttpo_image;
use ttpo_ffi::job::*;
use ttpo_ffi::options::*;
use ttpo_ffi::status::ttpo_last_error;
use ttpo_fuzz::{check_status, engine, Bytes};

const OK: u32 = 0;
const SIDE: u32 = 16;

/// What the callbacks of one job see (shared by both threads).
struct Shared {
    job: *mut ttpo_job,
    /// Returned by the cancel poll.
    cancel_poll: AtomicI32,
    /// What the choice callback writes and returns.
    choice_to: AtomicU32,
    choice_ret: AtomicI32,
    /// Also call (misuse) `ttpo_job_generate_candidates` from the choice callback.
    choice_runs_job: AtomicI32,
}

// SAFETY: the job pointer is only used through the C API, which is thread-safe for these
// calls (refusing concurrent ones with INVALID_STATE); the rest are atomics.
unsafe impl Sync for Shared {}

#[derive(Clone, Copy, Debug)]
enum Op {
    Cancel,
    Generate,
    Refine { null_out: bool },
    Run { null_out: bool },
    Choose(u32, u32),
    ChooseAuto,
    CandidateCount { null: bool },
    CandidateImage { index: u32, null_out: bool },
    CandidateInfo { index: u32, nulls: u8 },
    MetricCount,
    MetricName(u32),
    CandidateMetric(u32, u32),
    GetChoice { null: bool },
    Size { nulls: u8 },
    SetProgress(bool),
    SetCancel(bool, i32),
    SetChoice(bool, u32, i32, bool),
    LastError,
}

fn op(b: &mut Bytes) -> Op {
    let small = |b: &mut Bytes| match b.u8() {
        x @ 0..=249 => x as u32 % 4,
        _ => b.u32(),
    };
    match b.u8() % 18 {
        0 => Op::Cancel,
        1 => Op::Generate,
        2 => Op::Refine {
            null_out: b.u8() % 8 == 0,
        },
        3 => Op::Run {
            null_out: b.u8() % 8 == 0,
        },
        4 => Op::Choose(small(b), small(b)),
        5 => Op::ChooseAuto,
        6 => Op::CandidateCount {
            null: b.u8() % 8 == 0,
        },
        7 => Op::CandidateImage {
            index: small(b),
            null_out: b.u8() % 8 == 0,
        },
        8 => Op::CandidateInfo {
            index: small(b),
            nulls: b.u8(),
        },
        9 => Op::MetricCount,
        10 => Op::MetricName(small(b)),
        11 => Op::CandidateMetric(small(b), small(b)),
        12 => Op::GetChoice {
            null: b.u8() % 8 == 0,
        },
        13 => Op::Size { nulls: b.u8() },
        14 => Op::SetProgress(b.u8() % 4 != 0),
        15 => Op::SetCancel(b.u8() % 4 != 0, (b.u8() % 2) as i32),
        16 => {
            let on = b.u8() % 4 != 0;
            let to = b.u8() as u32 % 3 | (b.u8() as u32 % 3) << 8;
            let ret = (b.u8() % 4 == 0) as i32;
            Op::SetChoice(on, to, ret, b.u8() % 4 == 0)
        }
        _ => Op::LastError,
    }
}

fn is_heavy(o: &Op) -> bool {
    matches!(o, Op::Generate | Op::Run { .. })
}

unsafe extern "C" fn on_progress(_ud: *mut c_void, stage: u32, step: u32, total: u32, f: f64) {
    assert!((1..=3).contains(&stage), "progress stage {stage}");
    assert!(step <= total, "progress step {step} of {total}");
    assert!(
        f.is_finite() && (0.0..=1.0).contains(&f),
        "progress fraction {f}"
    );
}

unsafe extern "C" fn on_cancel(ud: *mut c_void) -> i32 {
    (*(ud as *const Shared)).cancel_poll.load(Ordering::Relaxed)
}

unsafe extern "C" fn on_choice(
    ud: *mut c_void,
    job: *const ttpo_job,
    preferred: *mut u32,
    dispreferred: *mut u32,
) -> i32 {
    let s = &*(ud as *const Shared);
    assert_eq!(
        job, s.job as *const ttpo_job,
        "choice callback got another job"
    );
    // Queries are allowed from inside.
    let mut n = 0;
    let st = ttpo_job_candidate_count(job, &mut n);
    check_status("candidate_count in the choice callback", st);
    if s.choice_runs_job.load(Ordering::Relaxed) != 0 {
        // Not allowed ("queried, not run"); must be refused, not deadlock or crash.
        let st = ttpo_job_generate_candidates(s.job);
        check_status("generate in the choice callback", st);
    }
    let to = s.choice_to.load(Ordering::Relaxed);
    *preferred = to & 0xff;
    *dispreferred = to >> 8;
    s.choice_ret.load(Ordering::Relaxed)
}

fn c_str_len(p: *const std::ffi::c_char) -> usize {
    if p.is_null() {
        0
    } else {
        // SAFETY: the library promises a NUL-terminated string.
        unsafe { CStr::from_ptr(p) }.to_bytes().len()
    }
}

/// An output buffer of the input's size (RGBA u8).
struct Out(Vec<u8>);
impl Out {
    fn new() -> Self {
        Out(vec![0xa5; (SIDE * SIDE * 4) as usize])
    }
    fn image(&mut self) -> ttpo_image {
        ttpo_image {
            data: self.0.as_mut_ptr().cast(),
            width: SIDE,
            height: SIDE,
            stride: (SIDE * 4) as isize,
            format: 0,
            layout: 2,
        }
    }
    fn untouched(&self) -> bool {
        self.0.iter().all(|&v| v == 0xa5)
    }
}

unsafe fn run_op(s: &Shared, o: Op, other_regenerates: bool) {
    let job = s.job;
    let ud = s as *const Shared as *mut c_void;
    const SENTINEL: u32 = 0xdead_beef;
    let (name, st) = match o {
        Op::Cancel => ("cancel", ttpo_job_cancel(job)),
        Op::Generate => ("generate", ttpo_job_generate_candidates(job)),
        Op::Refine { null_out } | Op::Run { null_out } => {
            let mut out = Out::new();
            let img = out.image();
            let p = if null_out { std::ptr::null() } else { &img };
            let st = match o {
                Op::Refine { .. } => ttpo_job_refine(job, p),
                _ => ttpo_job_run(job, p),
            };
            assert!(
                st == OK || out.untouched(),
                "output written on failure {st}"
            );
            ("refine/run", st)
        }
        Op::Choose(p, d) => ("choose", ttpo_job_choose(job, p, d)),
        Op::ChooseAuto => ("choose_auto", ttpo_job_choose_auto(job)),
        Op::CandidateCount { null } => {
            let mut n = SENTINEL;
            let p = if null { std::ptr::null_mut() } else { &mut n };
            let st = ttpo_job_candidate_count(job, p);
            assert!(st == OK || n == SENTINEL, "count written on failure");
            if st == OK {
                assert!(
                    n == 0 || n == 2,
                    "candidate count {n} (1 strength x 1 seed + input)"
                );
            }
            ("candidate_count", st)
        }
        Op::CandidateImage { index, null_out } => {
            let mut out = Out::new();
            let img = out.image();
            let p = if null_out { std::ptr::null() } else { &img };
            let st = ttpo_job_candidate_image(job, index, p);
            assert!(
                st == OK || out.untouched(),
                "candidate image written on failure"
            );
            ("candidate_image", st)
        }
        Op::CandidateInfo { index, nulls } => {
            let (mut a, mut b, mut c) = (-7.0f64, 7u64, -7.0f64);
            let st = ttpo_job_candidate_info(
                job,
                index,
                if nulls & 1 != 0 {
                    std::ptr::null_mut()
                } else {
                    &mut a
                },
                if nulls & 2 != 0 {
                    std::ptr::null_mut()
                } else {
                    &mut b
                },
                if nulls & 4 != 0 {
                    std::ptr::null_mut()
                } else {
                    &mut c
                },
            );
            assert!(
                st == OK || (a == -7.0 && b == 7 && c == -7.0),
                "candidate info written on failure"
            );
            if st == OK && nulls & 1 == 0 {
                assert!((0.0..=1.0).contains(&a), "strength {a}");
            }
            ("candidate_info", st)
        }
        Op::MetricCount => {
            let mut n = SENTINEL;
            let st = ttpo_job_metric_count(job, &mut n);
            assert!(st == OK || n == SENTINEL);
            if st == OK {
                assert!(n <= 1, "metric count {n} with one metric");
            }
            ("metric_count", st)
        }
        Op::MetricName(i) => {
            let p = ttpo_job_metric_name(job, i);
            // Valid until the job regenerates candidates: read it only when the other
            // thread cannot.
            if !other_regenerates && !p.is_null() {
                assert_eq!(CStr::from_ptr(p).to_str(), Ok("sharpness"));
            }
            ("metric_name", OK)
        }
        Op::CandidateMetric(i, m) => {
            let mut v = -7.0;
            let st = ttpo_job_candidate_metric(job, i, m, &mut v);
            assert!(st == OK || v == -7.0);
            ("candidate_metric", st)
        }
        Op::GetChoice { null } => {
            let (mut p, mut d) = (SENTINEL, SENTINEL);
            let pp = if null { std::ptr::null_mut() } else { &mut p };
            let st = ttpo_job_get_choice(job, pp, &mut d);
            assert!(
                st == OK || (p == SENTINEL && d == SENTINEL),
                "choice written on failure"
            );
            if st == OK {
                assert!(p < 2 && d < 2 && p != d, "choice {p} {d}");
            }
            ("get_choice", st)
        }
        Op::Size { nulls } => {
            let (mut w, mut h) = (SENTINEL, SENTINEL);
            let st = ttpo_job_size(
                job,
                if nulls & 1 != 0 {
                    std::ptr::null_mut()
                } else {
                    &mut w
                },
                if nulls & 2 != 0 {
                    std::ptr::null_mut()
                } else {
                    &mut h
                },
            );
            assert!(
                st == OK || (w == SENTINEL && h == SENTINEL),
                "size written on failure"
            );
            if st == OK {
                assert_eq!((w, h), (SIDE, SIDE));
            }
            ("size", st)
        }
        Op::SetProgress(on) => (
            "set_progress_callback",
            ttpo_job_set_progress_callback(job, on.then_some(on_progress as _), ud),
        ),
        Op::SetCancel(on, v) => {
            s.cancel_poll.store(v, Ordering::Relaxed);
            (
                "set_cancel_callback",
                ttpo_job_set_cancel_callback(job, on.then_some(on_cancel as _), ud),
            )
        }
        Op::SetChoice(on, to, ret, runs) => {
            s.choice_to.store(to, Ordering::Relaxed);
            s.choice_ret.store(ret, Ordering::Relaxed);
            s.choice_runs_job.store(runs as i32, Ordering::Relaxed);
            (
                "set_choice_callback",
                ttpo_job_set_choice_callback(job, on.then_some(on_choice as _), ud),
            )
        }
        Op::LastError => {
            let _ = c_str_len(ttpo_job_last_error(job));
            ("last_error", OK)
        }
    };
    check_status(name, st);
    let _ = c_str_len(ttpo_job_last_error(job));
    let _ = c_str_len(ttpo_last_error());
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let steps = 1 + b.u8() as u32 % 3;
    let refine_steps = 1 + b.u8() as u32 % 3;
    let strength = [0.3, 0.6, 1.0][b.u8() as usize % 3];
    let n0 = b.u8() as usize % 9;
    let n1 = b.u8() as usize % 9;
    let ops0: Vec<Op> = (0..n0).map(|_| op(&mut b)).collect();
    let ops1: Vec<Op> = (0..n1).map(|_| op(&mut b)).collect();
    let mut pixels: Vec<u8> = (0..SIDE * SIDE * 4)
        .map(|i| b.rest().get(i as usize).copied().unwrap_or(i as u8))
        .collect();
    // SAFETY: every handle is created, used and freed here; the buffers outlive the calls.
    unsafe {
        let o = ttpo_options_new();
        assert_eq!(ttpo_options_set_steps(o, steps), OK);
        assert_eq!(ttpo_options_set_refine_steps(o, refine_steps), OK);
        assert_eq!(ttpo_options_set_strengths(o, &strength, 1), OK);
        assert_eq!(ttpo_options_set_cfg_scale(o, 1.0), OK);
        assert_eq!(ttpo_options_set_metrics(o, c"sharpness".as_ptr()), OK);
        let input = ttpo_image {
            data: pixels.as_mut_ptr().cast(),
            width: SIDE,
            height: SIDE,
            stride: (SIDE * 4) as isize,
            format: 0,
            layout: 2,
        };
        let mut job = std::ptr::null_mut();
        let st = ttpo_job_new(engine(), o, &input, &mut job);
        ttpo_options_free(o);
        assert_eq!(st, OK, "job creation");
        let shared = Shared {
            job,
            cancel_poll: AtomicI32::new(0),
            choice_to: AtomicU32::new(1),
            choice_ret: AtomicI32::new(0),
            choice_runs_job: AtomicI32::new(0),
        };
        let regen0 = ops0.iter().any(is_heavy);
        let regen1 = ops1.iter().any(is_heavy);
        let barrier = Barrier::new(2);
        std::thread::scope(|sc| {
            let (sh, ba) = (&shared, &barrier);
            let (a, b) = (&ops0, &ops1);
            sc.spawn(move || {
                ba.wait();
                for &o in a {
                    run_op(sh, o, regen1);
                }
            });
            sc.spawn(move || {
                ba.wait();
                for &o in b {
                    run_op(sh, o, regen0);
                }
            });
        });
        ttpo_job_free(job);
    }
});
